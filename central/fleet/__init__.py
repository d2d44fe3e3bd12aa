"""Fleet operations: health, desired config, commands, rollouts, enrolment."""
