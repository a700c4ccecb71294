"""The machine activities (launch, stop, terminate), one per provider behind one name each.

`local` machines are sshd processes on this host (activities.local_provider); `ec2`
machines are EC2 instances (activities.ec2_provider). Registered hosts are existing
machines (activities.registered): launching one attaches to it (its pinned key must
answer), stopping and terminating leave the machine as it is.

An ec2 instance is reached over SSH at its public address (or its private one) as
`ssh_user` with the key of `ssh_key_file` (read and sealed by the CLI), pinning the host
key it printed to its console at first boot; its EBS volumes are then made ready at their
mount points (activities.volumes). A failure there terminates what the launch made. Where
no EC2 machine can be reached (tests against a moto server, which has no machines)
OPSFLOW_EC2_SSH_STANDIN=local gives each ec2 instance a local sshd instance as its
stand-in machine: the AWS calls are all real, only the SSH side is local (and no volume
is mounted: a stand-in has no block devices).
"""

from __future__ import annotations

import asyncio
import os
import re
import time

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import aws, ec2_provider, local_provider, names, registered, volumes
from activities.heartbeat import heartbeating
from opsflow.errors import ErrorType
from opsflow.messages import LaunchInput, LaunchResult, MachineInput, SshEndpoint
from opsflow.spec import Provider
from opsflow.volumes import mounts_for
from workflows.failures import invalid

STANDIN_VARIABLE = "OPSFLOW_EC2_SSH_STANDIN"
HOST_KEY_WAIT_SECONDS = 300
_HOST_KEYS = re.compile(
    r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S
)


@activity.defn(name=names.LAUNCH_INSTANCE)
async def launch_instance(request: LaunchInput) -> LaunchResult:
    match request.provider:
        case Provider.LOCAL:
            return await asyncio.to_thread(local_provider.launch, request)
        case Provider.EC2:
            return await heartbeating(asyncio.to_thread(_launch_ec2, request))
        case Provider.REGISTERED:
            return await asyncio.to_thread(registered.attach, request)
    raise _not_launched(request.provider)


@activity.defn(name=names.STOP_INSTANCE)
async def stop_instance(request: MachineInput) -> None:
    match request.provider:
        case Provider.LOCAL:
            await asyncio.to_thread(local_provider.stop, request)
        case Provider.EC2:
            await heartbeating(asyncio.to_thread(_stop_ec2, request))
        case Provider.REGISTERED:
            pass  # not opsflow's machine: it keeps running
        case _:
            raise _not_launched(request.provider)


@activity.defn(name=names.TERMINATE_INSTANCE)
async def terminate_instance(request: MachineInput) -> None:
    match request.provider:
        case Provider.LOCAL:
            await asyncio.to_thread(local_provider.terminate, request)
        case Provider.EC2:
            await heartbeating(asyncio.to_thread(_terminate_ec2, request))
        case Provider.REGISTERED:
            pass  # deregistered: the machine returns to its owner untouched
        case _:
            raise _not_launched(request.provider)


ACTIVITIES = (launch_instance, stop_instance, terminate_instance)


# ---- ec2 ---------------------------------------------------------------------------------


def _launch_ec2(request: LaunchInput) -> LaunchResult:
    machine = request.ec2
    if machine is None:
        raise invalid(f"{request.stack}/{request.hostname}: an ec2 launch needs its ec2 settings")
    resources = ec2_provider.launch(machine, kept=request.kept)
    if os.environ.get(STANDIN_VARIABLE) == "local":
        standin = local_provider.launch(request)
        facts = ec2_provider.facts(machine.region, resources)
        return standin.model_copy(update={"ec2": resources, "facts": facts})
    address = resources.public_ip or resources.private_ip
    key_file = machine.options.ssh_key_file
    # The key the CLI sealed; a stack made before keys travelled has only the file.
    key = machine.options.ssh_key
    if address is None or key_file is None:
        raise invalid(
            f"{request.stack}/{request.hostname}: instance {resources.instance_id} has no "
            "address or the stack has no ssh_key_file to reach it"
        )
    user = machine.options.ssh_user or "ec2-user"
    try:
        facts = ec2_provider.facts(machine.region, resources)
        endpoint = SshEndpoint(
            host=address,
            port=22,
            user=user,
            sudo=user != "root",  # the AMIs' login users (ec2-user, ubuntu) sudo without password
            key_file=key_file,
            key=key,
            host_key=_console_host_key(machine.region, resources.instance_id),
        )
        # Before setup, as OpsWorks did: recipes find the volumes at their mount points.
        volumes.mount(endpoint, "/", mounts_for(machine, resources))
    except ApplicationError:
        # Compensation: what this launch made goes (a heal's kept address and volumes stay).
        ec2_provider.terminate(machine.region, resources, keep=request.kept is not None)
        raise
    return LaunchResult(
        ssh=endpoint,
        root="/",
        private_ip=resources.private_ip or address,
        ec2=resources,
        facts=facts,
    )


def _console_host_key(region: str, instance_id: str) -> str:
    """The ed25519 host key the instance printed to its console at first boot (cloud-init
    does on the mainstream AMIs): what SSH pins, so the first connection is trusted."""
    ec2 = ec2_provider.client(region)
    deadline = time.monotonic() + HOST_KEY_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            console = ec2.get_console_output(InstanceId=instance_id, Latest=True)
        except ClientError as err:
            # Mapped here, so the launch's compensation (which undoes on ApplicationError)
            # still releases the instance when AWS throttles or refuses this call.
            raise aws.refusal(err, aws.EC2_ERRORS, prefix=f"instance {instance_id}: ") from err
        output = console.get("Output") or ""
        found = _HOST_KEYS.search(output)
        if found:
            for line in found.group(1).splitlines():
                if line.startswith("ssh-ed25519 "):
                    return " ".join(line.split()[:2])
        time.sleep(5)
    raise ApplicationError(
        f"instance {instance_id} printed no SSH host key to its console within "
        f"{HOST_KEY_WAIT_SECONDS}s: opsflow pins host keys and will not trust it blindly",
        type=ErrorType.EC2_REFUSED,
    )


def _stop_ec2(request: MachineInput) -> None:
    if request.ec2 is not None and request.region is not None:
        ec2_provider.stop(request.region, request.ec2.instance_id)
    if os.environ.get(STANDIN_VARIABLE) == "local":
        local_provider.stop(request)


def _terminate_ec2(request: MachineInput) -> None:
    if request.ec2 is not None and request.region is not None:
        ec2_provider.terminate(request.region, request.ec2, keep=request.keep)
    if os.environ.get(STANDIN_VARIABLE) == "local":
        local_provider.terminate(request)


def _not_launched(provider: Provider) -> ApplicationError:
    return invalid(f"provider {provider.value}: opsflow does not launch or stop these machines")
