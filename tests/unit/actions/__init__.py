"""Pure tests of the actions worker: signing, egress rules, retry schedule, breaker, outcomes."""
