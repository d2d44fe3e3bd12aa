"""Fleet operations: health, desired config, rollouts and the fleet audit (issue 15)."""
