"""`opsflow worker`: the worker process (worker.py), from an installed package too."""

from __future__ import annotations

import click


@click.command("worker")
def worker() -> None:
    """Run an opsflow worker: every workflow and activity, polling the task queue.

    TEMPORAL_ADDRESS (or a TEMPORAL_PROFILE, with TLS and API key as the `temporal` CLI
    reads them) says where Temporal is, OPSFLOW_TASK_QUEUE which queue (default
    opsflow); the local instances it launches run on its own queue QUEUE@ID (ID:
    OPSFLOW_WORKER_ID, else kept in OPSFLOW_HOME/worker.id). It runs until SIGTERM or
    Ctrl-C.
    """
    import asyncio

    from worker import main

    asyncio.run(main())  # its errors reach the CLI's one handler: a message, an exit code
