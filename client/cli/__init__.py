"""The `opsflow` command line: a thin layer over client/api.py and client/dev.py.

One module per command group, registered on the root group here; `render` prints, and
`session` connects. Exit codes: 0 done, 1 the operation failed (the message says where to
look), 2 bad input.

Importing this package (what `opsflow --help` pays) loads click and opsflow's light
modules only: Temporal, pydantic models, rich, boto3 and fabric are imported inside the
commands that use them.
"""

from __future__ import annotations

import os
import sys

import click

from client.cli import render, session
from client.cli.commands import command, run_command
from client.cli.deploy import deploy, rollback
from client.cli.deployments import deployments
from client.cli.dev import dev
from client.cli.importing import import_group
from client.cli.instance import instance
from client.cli.schedule import schedule
from client.cli.stack import stack
from client.cli.worker import worker
from opsflow.errors import OpsflowError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """opsflow: stacks, layers, instances and lifecycle recipes, durably on Temporal."""


for group in (
    dev,
    stack,
    instance,
    run_command,
    command,
    deploy,
    rollback,
    deployments,
    schedule,
    import_group,
    worker,
):
    cli.add_command(group)


def _main() -> int:
    try:
        code = cli.main(standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Abort:  # click's form of Ctrl-C
        render.error("interrupted")
        return 130
    except click.ClickException as err:
        err.show()
        return 2 if isinstance(err, click.UsageError | click.BadParameter) else err.exit_code
    except OpsflowError as err:
        render.error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        render.error("interrupted")
        return 130


def main() -> None:
    session.collect_garbage = False  # this process ends with os._exit below
    code = _main()
    # Spans are buffered only if a command connected (and so loaded telemetry).
    telemetry = sys.modules.get("runtime.telemetry")
    if telemetry is not None:
        telemetry.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust runtime can abort the interpreter while it shuts down
    # (temporalio/sdk-python#300); everything is flushed and nothing is left to do.
    os._exit(code)
