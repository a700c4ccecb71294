"""`opsflow deploy` (an app, or approve/abort a canary at its gate) and `opsflow rollback`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from client.cli.deployments import deployment_id_argument
from client.cli.follow import finish
from client.cli.session import (
    call_with_client,
    custom_json_option,
    output_option,
    wait_option,
    with_client,
)
from opsflow.errors import InvalidInput
from opsflow.rollout import Amount, Strategy, canary_batch, parse_batch, parse_max_failures

if TYPE_CHECKING:
    from client.api import OpsflowClient
    from opsflow.messages import AppCommandInput, DeployInput
    from opsflow.spec import HealthCheckSpec


class DefaultCommandGroup(click.Group):
    """A group that is also a command: `deploy STACK APP ...` and `deploy approve ID`.

    Routing looks at the first argument only. A subcommand's name (`approve`, `abort`)
    or a help option goes to the group as usual; anything else (a stack name, an option
    such as `--revision`) goes, with every argument, to `default_command`, which parses
    them itself. The default command is not listed among the subcommands; `deploy --help`
    shows its usage and options next to them. A stack that is literally named `approve`
    or `abort` is deployed with `--` first: `opsflow deploy -- approve APP`.

    The default command runs in a context of its own whose parent is the group's parent,
    so its usage and error hints read `opsflow deploy ...` rather than naming a hidden
    subcommand.
    """

    def __init__(self, *args: Any, default_command: click.Command, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def _routes_to_default(self, ctx: click.Context, args: list[str]) -> bool:
        return bool(args) and args[0] not in self.commands and args[0] not in ctx.help_option_names

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if self._routes_to_default(ctx, args):
            # No subcommand: keep every argument (options included) for the default command.
            ctx._protected_args, ctx.args = [], list(args)
            return ctx.args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        if ctx._protected_args or not ctx.args:
            return super().invoke(ctx)
        args, ctx.args = ctx.args, []
        with ctx:
            sub_ctx = self.default_command.make_context(ctx.info_name, args, parent=ctx.parent)
            with sub_ctx:
                return sub_ctx.command.invoke(sub_ctx)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        pieces = " ".join(self.default_command.collect_usage_pieces(ctx))
        formatter.write_usage(ctx.command_path, pieces)
        formatter.write_usage(ctx.command_path, "approve|abort DEPLOYMENT_ID", prefix="       ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.default_command.format_options(ctx, formatter)
        self.format_commands(ctx, formatter)


def _amount(
    parse: Callable[[str], Amount],
) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A click callback checking a count (3) or percentage (25%) with the rollout rules."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        option = param.opts[0] if param.opts else str(param.name)
        try:
            return str(parse(value))
        except InvalidInput as err:
            raise click.BadParameter(str(err).removeprefix(f"{option}: "), ctx, param) from None

    return check


def health_check_of(text: str) -> HealthCheckSpec:
    """`--health-check`: an http(s) URL template is probed over HTTP, anything else is a
    command run on the instance (exit 0 is healthy)."""
    from pydantic import ValidationError

    from opsflow.spec import HealthCheckSpec

    try:
        if text.startswith(("http://", "https://")):
            return HealthCheckSpec(url=text)
        return HealthCheckSpec(command=text)
    except ValidationError as err:
        problems = "; ".join(
            str(e["msg"]).removeprefix("Value error, ").removeprefix("health_check: ")
            for e in err.errors()
        )
        raise click.BadParameter(problems) from None


def _health_check(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> HealthCheckSpec | None:
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("give a URL or a command", ctx, param)
    return health_check_of(value)


@click.command(
    "deploy",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Canary: `opsflow deploy approve|abort DEPLOYMENT_ID` past or at the gate.",
)
@click.argument("stack_name", metavar="STACK")
@click.argument("app")
@click.option("--revision", help="Git branch, tag or commit (git sources).")
@click.option(
    "--strategy",
    type=click.Choice([s.value for s in Strategy]),
    default=Strategy.ALL_AT_ONCE.value,
    show_default=True,
)
@click.option(
    "--batch",
    callback=_amount(parse_batch),
    help="rolling/canary: instances per batch, N or P% (canary default: 1).",
)
@click.option(
    "--max-failures",
    callback=_amount(parse_max_failures),
    help="Failed instances tolerated before rolling back, N or P% (default: 0).",
)
@click.option(
    "--bake",
    type=click.FloatRange(min=0, min_open=True),
    help="canary: go on after this many seconds (default: wait for approve).",
)
@click.option(
    "--health-check",
    callback=_health_check,
    help="An http(s):// URL ({private_ip}, {hostname} filled in) or a command on the instance.",
)
@custom_json_option
@wait_option
@output_option
def deploy_app(
    stack_name: str,
    app: str,
    revision: str | None,
    strategy: str,
    batch: str | None,
    max_failures: str | None,
    bake: float | None,
    health_check: HealthCheckSpec | None,
    custom_json: dict[str, Any] | None,
    wait: bool,
    fmt: str,
) -> None:
    """Deploy APP (from STACK's stack file) to the instances of its layers.

    --custom-json is seen by every recipe of this deployment only, over the stack's and
    the layers' custom JSON; a rollback (by hand, or after failures) runs without it."""
    from opsflow.messages import DeployInput

    if strategy == Strategy.ALL_AT_ONCE.value and batch is not None:
        raise click.UsageError("--batch: an all-at-once deployment has one batch")
    if strategy != Strategy.CANARY.value and bake is not None:
        raise click.UsageError("--bake: only a canary deployment has a bake time")
    if strategy == Strategy.CANARY.value and batch is None:
        batch = str(canary_batch(None))
    request = DeployInput(
        app=app,
        revision=revision,
        strategy=strategy,
        batch=batch,
        max_failures=max_failures,
        canary_bake_seconds=bake,
        health_check=health_check,
        custom_json=custom_json,
    )
    call_with_client(_deploy, stack_name, request, wait, fmt)


async def _code_as_it_is_now(
    client: OpsflowClient, stack_name: str, request: DeployInput
) -> DeployInput:
    """An app whose source is a directory on this machine is packed into the artifact
    store again, so a deploy takes the code as it is now (as OpsWorks fetches an app's
    source at each deploy); elsewhere the deploy takes what the last apply packed."""
    from client.stackfile import repack

    spec = (await client.describe(stack_name)).spec
    artifact = repack(next((a.source for a in spec.apps if a.name == request.app), None))
    return request.model_copy(update={"artifact": artifact})


async def _deploy(
    client: OpsflowClient, stack_name: str, request: DeployInput, wait: bool, fmt: str
) -> None:
    from client.api import run_url

    started = await client.deploy(stack_name, await _code_as_it_is_now(client, stack_name, request))
    if fmt != "json":
        click.echo(
            f"deploying {request.app} ({request.strategy}) to {', '.join(started.targets)}: "
            f"{started.deployment_id}"
        )
        click.echo(f"  {run_url(started.deployment_id)}")
        if request.strategy == Strategy.CANARY.value and request.canary_bake_seconds is None:
            click.echo(
                f"  after the first batch: opsflow deploy approve|abort {started.deployment_id}"
            )
    await finish(client, started, wait, fmt)


@click.group(
    "deploy",
    cls=DefaultCommandGroup,
    default_command=deploy_app,
    invoke_without_command=False,
)
def deploy() -> None:
    """Deploy an app (STACK APP), or approve or abort a canary deployment at its gate.

    \b
    opsflow deploy STACK APP [--strategy rolling --batch 25%] [--wait]
    opsflow deploy approve DEPLOYMENT_ID
    opsflow deploy abort DEPLOYMENT_ID
    """


@deploy.command("approve")
@click.argument("deployment_id", metavar="DEPLOYMENT_ID", callback=deployment_id_argument)
@with_client
async def deploy_approve(client: OpsflowClient, deployment_id: str) -> None:
    """Let a canary deployment go on past its first batch."""
    await client.approve(deployment_id)
    click.echo(f"{deployment_id}: approved")


@deploy.command("abort")
@click.argument("deployment_id", metavar="DEPLOYMENT_ID", callback=deployment_id_argument)
@with_client
async def deploy_abort(client: OpsflowClient, deployment_id: str) -> None:
    """Stop a canary deployment at its gate and roll its first batch back."""
    await client.abort(deployment_id)
    click.echo(f"{deployment_id}: aborted (rolling the first batch back)")


@click.command("rollback")
@click.argument("stack_name", metavar="STACK")
@click.argument("app")
@click.option("--to", "release", help="The release to go back to (default: the previous one).")
@wait_option
@output_option
@with_client
async def rollback(
    client: OpsflowClient, stack_name: str, app: str, release: str | None, wait: bool, fmt: str
) -> None:
    """Re-activate each instance's previous release of APP (or --to RELEASE)."""
    from opsflow.messages import AppAction, AppCommandInput

    request = AppCommandInput(app=app, action=AppAction.ROLLBACK, release=release)
    await app_command(client, stack_name, request, wait, fmt)


async def app_command(
    client: OpsflowClient, stack_name: str, request: AppCommandInput, wait: bool, fmt: str
) -> None:
    """An app command (rollback, undeploy, start, stop, restart), followed as a deploy is."""
    from client.api import run_url

    started = await client.app_command(stack_name, request)
    if fmt != "json":
        click.echo(
            f"{request.action.value} {request.app} on {', '.join(started.targets)}: "
            f"{started.deployment_id}"
        )
        click.echo(f"  {run_url(started.deployment_id)}")
    await finish(client, started, wait, fmt)
