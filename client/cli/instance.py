"""`opsflow instance`: list, add, register, start, stop, delete and kill instances."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from client.cli import render
from client.cli.session import output_option, wait_for, wait_option, with_client
from opsflow import names
from opsflow.errors import InvalidInput

if TYPE_CHECKING:
    from client.api import OpsflowClient


@click.group()
def instance() -> None:
    """Add, start, stop, delete and list instances."""


layers_option = click.option(
    "--layer",
    "layers",
    multiple=True,
    required=True,
    help="A layer it joins; repeat for several (each event runs their recipes in this order).",
)


@instance.command("list")
@click.argument("stack_name", metavar="STACK")
@output_option
@with_client
async def instance_list(client: OpsflowClient, stack_name: str, fmt: str) -> None:
    """The instances of STACK."""
    found = await client.describe(stack_name)
    if fmt == "json":
        render.emit_json(found.instances)
    else:
        render.instance_table(found)


@instance.command("add")
@click.argument("stack_name", metavar="STACK")
@click.argument("host", metavar="[HOSTNAME]", required=False)
@layers_option
@click.option("--hostname", help="Its hostname (or give it after STACK).")
@click.option("--start", is_flag=True, help="Start it right away.")
@wait_option
@with_client
async def instance_add(
    client: OpsflowClient,
    stack_name: str,
    host: str | None,
    layers: tuple[str, ...],
    hostname: str | None,
    start: bool,
    wait: bool,
) -> None:
    """Add an instance to one or more layers of STACK."""
    from client.api import settled
    from opsflow.messages import AddInstanceInput

    if host is not None and hostname is not None and host != hostname:
        raise InvalidInput(f"--hostname: {hostname!r} differs from HOSTNAME {host!r}; give one")
    name = hostname or host
    if name is None:
        raise InvalidInput("HOSTNAME: give the instance's hostname (or --hostname)")
    names.check_hostname(name, "--hostname")
    for index, layer in enumerate(layers):
        if layer in layers[:index]:
            raise InvalidInput(f"--layer: layer {layer!r} is named twice")
    view = await client.add_instance(
        stack_name, AddInstanceInput(layers=list(layers), hostname=name, start=start)
    )
    where = f"layer {layers[0]}" if len(layers) == 1 else f"layers {', '.join(layers)}"
    click.echo(f"instance {view.hostname} added to {where} ({view.status.value})")
    if start and wait:
        await wait_for(client, stack_name, name, settled)


@instance.command("register")
@click.argument("stack_name", metavar="STACK")
@layers_option
@click.option("--host", required=True, help="DNS name or IP address of the existing host.")
@click.option("--port", type=int, default=22, show_default=True)
@click.option("--user", default="root", show_default=True, help="Login user (writes under --root).")
@click.option("--key-file", required=True, help="Private key that logs in as --user.")
@click.option("--hostname", help="Its name in the stack (default: the first label of --host).")
@click.option("--root", default="/", show_default=True, help="Where opsflow keeps its files.")
@click.option("--host-key", help="'<type> <base64>' to pin (default: the key it shows now).")
@click.option("--sudo", is_flag=True, help="Run recipes through `sudo -n` (--user is not root).")
@wait_option
@with_client
async def instance_register(
    client: OpsflowClient,
    stack_name: str,
    layers: tuple[str, ...],
    host: str,
    port: int,
    user: str,
    key_file: str,
    hostname: str | None,
    root: str,
    host_key: str | None,
    sudo: bool,
    wait: bool,
) -> None:
    """Bring an existing SSH host into a layer of STACK (OpsWorks' register).

    The worker logs in with the key first; a host that does not answer is not registered.
    Then setup runs and it goes online like any instance. opsflow never stops or
    terminates it: `instance stop` runs the shutdown recipes only, `instance delete`
    deregisters it (shutdown recipes, then the stack forgets it).
    """
    from pydantic import ValidationError

    from client.api import settled
    from client.stackfile import read_private_key
    from opsflow.messages import RegisterInstanceInput
    from opsflow.spec import RegisteredHostSpec
    from runtime.sealing import Sealer

    hostname = names.check_hostname(hostname or hostname_of(host), "--hostname")
    # Read here and sent sealed: the worker that logs in has no such file.
    found = read_private_key(Path.cwd(), key_file, "--key-file")
    if isinstance(found, str):
        raise InvalidInput(found)
    key_path, key_text, key_id = found
    try:
        target = RegisteredHostSpec(
            host=host,
            port=port,
            user=user,
            key_file=str(key_path),
            key=Sealer().seal(key_text),
            key_id=key_id,
            host_key=host_key,
            root=root,
            sudo=sudo,
        )
    except ValidationError as err:
        raise InvalidInput("; ".join(_option_problem(e) for e in err.errors())) from None
    registered = await client.register_instance(
        stack_name, RegisterInstanceInput(layers=list(layers), hostname=hostname, host=target)
    )
    joined = f"layer {layers[0]}" if len(layers) == 1 else f"layers {', '.join(layers)}"
    click.echo(
        f"instance {hostname} registered in {joined} ({target.where()}, host key "
        f"{fingerprint(registered.host_key)} pinned)"
    )
    if wait:
        await wait_for(client, stack_name, hostname, settled, after=registered.view)


def hostname_of(host: str) -> str:
    """A registered host's name in the stack: the first label of its DNS name."""
    label = host.split(".", 1)[0].lower()
    if host.replace(".", "").isdigit() or ":" in host or names.hostname_problem(label) is not None:
        raise InvalidInput(f"--hostname: needed ({host!r} gives no usable name)")
    return label


def _option_problem(error: Mapping[str, Any]) -> str:
    """A RegisteredHostSpec error, as the option that caused it."""
    message = str(error["msg"]).removeprefix("Value error, ")
    field, sep, rest = message.partition(": ")
    location = [str(part) for part in error.get("loc", ())]
    if not sep and location:
        field, rest = location[0], message
    return f"--{field.replace('_', '-')}: {rest}"


def fingerprint(host_key: str) -> str:
    """`ssh-ed25519 SHA256:...`, as ssh-keygen -l and ssh print it."""
    kind, blob = host_key.split()[:2]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return f"{kind} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _instance_action(action: str, help_text: str) -> None:
    """`instance start|stop|delete` (action: an InstanceActionKind value; the enum lives
    with the messages, which are imported only when the command runs)."""

    @instance.command(action, help=help_text)
    @click.argument("stack_name", metavar="STACK")
    @click.argument("hostname")
    @wait_option
    @with_client
    async def command(client: OpsflowClient, stack_name: str, hostname: str, wait: bool) -> None:
        from client.api import gone, settled
        from opsflow.messages import InstanceActionKind

        kind = InstanceActionKind(action)
        view = await client.instance_action(stack_name, hostname, kind)
        click.echo(f"{kind.value} requested for {hostname} (was {view.status.value})")
        if wait:
            until = gone if kind == InstanceActionKind.DELETE else settled
            await wait_for(client, stack_name, hostname, until, after=view)


_instance_action("start", "Launch the instance, run setup, bring it online.")
_instance_action("stop", "Run shutdown recipes, then stop the instance.")
_instance_action("delete", "Stop (if running) and delete the instance.")


@instance.command("kill")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@click.option(
    "--network",
    is_flag=True,
    help="Cut the machine's link instead (a partition: its processes keep running); "
    "`opsflow instance restore-network` gives it back.",
)
@with_client
async def instance_kill(
    client: OpsflowClient, stack_name: str, hostname: str, network: bool
) -> None:
    """Crash a local instance, for drills: SIGKILL every process of its machine (of its
    sshd and connections, for an instance that is an sshd process).

    opsflow is not told: the stack still shows the instance online until the layer's
    healing loop notices. A worker does the kill, on its own machine (local instances
    live in its OPSFLOW_HOME), so the CLI may run anywhere.
    """
    if network:
        click.echo(await client.network_drill(stack_name, hostname, cut=True))
        return
    found = await client.kill_instance(stack_name, hostname)
    layers = next(v.layers for v in found.instances if v.hostname == hostname)
    click.echo(f"{hostname}: machine killed (every process of it, SIGKILL)")
    # Only its first layer's loop checks it, and only when all its layers auto-heal.
    for layer in found.spec.layers:
        if layer.name not in layers:
            continue
        if not layer.auto_healing:
            click.echo(f"  layer {layer.name}: auto_healing is off, nothing will replace it")
        elif layer.name == layers[0]:
            check = layer.health_check
            click.echo(
                f"  layer {layer.name}: its healing loop checks every {check.interval:g}s and "
                f"takes it as lost after {check.unhealthy_threshold} failed check(s) in a row"
            )


@instance.command("restore-network")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname")
@with_client
async def instance_restore_network(client: OpsflowClient, stack_name: str, hostname: str) -> None:
    """Give a machine cut by `instance kill --network` its link back. If a heal has
    replaced the machine since, says so and changes nothing."""
    click.echo(await client.network_drill(stack_name, hostname, cut=False))


# `instance attributes`: the choices are opsflow.recipe_view's (kept here as literals so
# that --help imports no pydantic model; tests/client/test_cli_instance_attributes.py
# checks they are the same).
ATTRIBUTE_FORMATS = ("chef11", "chef12", "json")
ATTRIBUTE_EVENTS = (
    "setup", "configure", "deploy", "undeploy", "shutdown",
    "execute_recipes", "restart", "rollback", "start", "stop",
)  # fmt: skip


@instance.command("attributes")
@click.argument("stack_name", metavar="STACK")
@click.argument("hostname", metavar="HOST")
@click.option(
    "--event",
    type=click.Choice(ATTRIBUTE_EVENTS),
    help="The lifecycle event or command run (default: configure; deploy with --app).",
)
@click.option("--app", help="As in a deploy of this app (one of the instance's layers').")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(ATTRIBUTE_FORMATS),
    help="chef11: the node JSON; chef12: the data bags {BAG: {ITEM_ID: item}}; json: the "
    "$OPSFLOW_ATTRIBUTES document (default: what this instance's configuration manager gets).",
)
@with_client
async def instance_attributes(
    client: OpsflowClient,
    stack_name: str,
    hostname: str,
    event: str | None,
    app: str | None,
    fmt: str | None,
) -> None:
    """Print, as JSON, what a recipe on HOST would see now, secure values masked (what
    OpsWorks' `opsworks-agent-cli get_json` answered)."""
    from opsflow import recipe_view
    from opsflow.errors import NotFound
    from opsflow.messages import ConfigurationQuery

    found = await client.describe(stack_name)
    view = next((v for v in found.instances if v.hostname == hostname), None)
    if view is None:
        known = ", ".join(v.hostname for v in found.instances) or "none"
        raise NotFound(f"stack {stack_name} has no instance {hostname!r} (instances: {known})")
    app_spec = recipe_view.app_on(found.spec, view, app) if app is not None else None
    event = event or ("deploy" if app is not None else "configure")
    context = await client.run_context(
        stack_name, ConfigurationQuery(hostname=hostname, event=event)
    )
    document = recipe_view.document(
        context,
        fmt or recipe_view.default_format(context),
        stack_name,
        app=app_spec,
        root=view.root,
    )
    render.emit_json(document)
