"""How a tool call runs (registry, policy, runner) and the resilience patterns around it."""
