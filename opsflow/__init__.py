"""opsflow's pure domain: stack specs, statuses, decisions and the stack configuration.

Nothing in this package talks to Temporal, SSH, AWS or the disk, so every decision here
is a plain function that a unit test can call.
"""
