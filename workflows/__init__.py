"""Deterministic orchestration: stacks, instances and deployments (commands)."""
