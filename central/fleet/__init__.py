"""Fleet operations: terminal health and alerts, desired config and rollouts, enrolment."""
