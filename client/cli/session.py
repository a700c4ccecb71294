"""What every command that talks to Temporal shares: its options, a connected client for
the command's body, and following instances until they settle.

Temporal (client.api, temporalio) is imported when a command connects, never at import.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from client.cli.render import FORMATS
from opsflow import names
from opsflow.errors import OperationFailed, OpsflowError
from opsflow.status import FAILED

if TYPE_CHECKING:
    from client.api import OpsflowClient
    from opsflow.messages import InstanceStatusLine, InstanceView, StackDescription

T = TypeVar("T")

output_option = click.option(
    "-o", "--output", "fmt", type=click.Choice(FORMATS), default="table", show_default=True
)
wait_option = click.option("--wait", is_flag=True, help="Wait until the operation has finished.")


def _custom_json(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """`--custom-json JSON|@FILE`: a JSON object (opsflow.custom_json), or exit 2 naming
    the option and the problem, before anything connects."""
    from pathlib import Path

    from opsflow import custom_json
    from opsflow.errors import InvalidInput

    if value is None:
        return None
    source = None
    if value.startswith("@"):
        source = value[1:]
        path = Path(source)
        try:
            if path.stat().st_size > 4 * custom_json.MAX_BYTES:
                raise click.BadParameter(
                    f"{source}: over the limit of {custom_json.MAX_BYTES} bytes", ctx, param
                )
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise click.BadParameter(f"cannot read {source}: {reason}", ctx, param) from None
    try:
        return custom_json.parse(value, option="", source=source)
    except InvalidInput as err:
        raise click.BadParameter(str(err).removeprefix(": "), ctx, param) from None


custom_json_option = click.option(
    "--custom-json",
    callback=_custom_json,
    metavar="JSON|@FILE",
    help="Custom JSON for this command's recipes (an object, or @FILE holding one), merged "
    "over the stack's and the layers' (at most 64 KiB).",
)

# Collect a command's garbage once it ran, for callers that go on in this interpreter
# (tests): a Temporal client freed at interpreter shutdown can abort it. The `opsflow`
# process itself ends with os._exit, where collecting only delays the exit (~0.1-0.2 s).
collect_garbage = True


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


async def open_client() -> OpsflowClient:
    from client.api import OpsflowClient
    from runtime.connection import connect
    from runtime.sealing import client_origin
    from runtime.telemetry import tracing_interceptors

    # Every change says which store and key this CLI uses: workers refuse another's.
    connected = await connect(interceptors=tracing_interceptors("opsflow-cli"))
    return OpsflowClient(connected, origin=client_origin)


def call_with_client(func: Callable[..., Awaitable[None]], *args: Any, **kwargs: Any) -> None:
    """Run an async command body with a connected client (for commands that check their
    arguments first, so bad input exits 2 before anything connects)."""

    async def body() -> OpsflowError | None:
        try:
            await func(await open_client(), *args, **kwargs)
        except OpsflowError as err:
            # Leave no traceback holding the Temporal client: freeing its Rust runtime
            # during interpreter shutdown aborts the process.
            err.__traceback__ = None
            err.__context__ = None
            return err
        return None

    failure = run(body())
    if collect_garbage:
        gc.collect()
    if failure is not None:
        raise failure


def with_client(func: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async command body with a connected client."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        call_with_client(func, *args, **kwargs)

    return wrapper


async def wait_for(
    client: OpsflowClient,
    stack_name: str,
    hostname: str,
    until: Callable[[InstanceStatusLine | None], bool],
    after: InstanceView | None = None,
) -> None:
    # The command is queued on the instance; a status that settled before it ran is stale.
    stale_at = after.updated_at if after else None

    def fresh(view: InstanceStatusLine | None) -> bool:
        if view is not None and stale_at is not None and view.updated_at == stale_at:
            return False
        return until(view)

    found = await client.wait_instances(stack_name, fresh, [hostname])
    view = next((v for v in found.instances if v.hostname == hostname), None)
    click.echo(f"{hostname}: {view.status.value if view else 'deleted'}")
    await fail_if_failed(client, found, [hostname])


async def fail_if_failed(
    client: OpsflowClient, found: StackDescription, hostnames: list[str]
) -> None:
    from client.api import run_url

    failed = [v for v in found.instances if v.hostname in hostnames and v.status in FAILED]
    if not failed:
        return
    lines = [f"{len(failed)} instance(s) failed:"]
    for view in failed:
        lines.append(f"  {view.hostname}: {view.status.value}: {view.message}")
        tail = await client.last_log_tail(found.name, view.hostname)
        if tail:
            lines.extend(f"    | {line}" for line in tail.splitlines()[-10:])
    workflow_id = names.instance_workflow_id(found.name, failed[0].hostname)
    raise OperationFailed("\n".join(lines), run_url(workflow_id))


async def cancel_and_wait(client: OpsflowClient, deployment_id: str) -> None:
    await client.cancel_deployment(deployment_id)
    with contextlib.suppress(OperationFailed):
        await client.wait_deployment(deployment_id)
    click.echo(f"{deployment_id} cancelled", err=True)
