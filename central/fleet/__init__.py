"""Fleet operations: health and alerts, desired config, commands, rollouts, enrolment, audit."""
