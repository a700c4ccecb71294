"""What the CLI and the worker both need at run time, and neither owns: the connection to
Temporal, tracing, and the run-log file store.

`opsflow/` stays pure (no I/O); `client/` and `worker.py` both import from here, so the
worker no longer imports the CLI's package.
"""
