"""Every side effect opsflow has: compute providers, recipe runners over SSH."""
