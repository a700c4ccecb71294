"""OpsWorks user profiles (IAM users with an SSH user name and key) as stack users: the
name made a valid Unix user name, the key checked (a malformed one is reported and the
user left out), sudo as the stack's permissions gave it (false where they are not known).
"""

from __future__ import annotations

import re
from typing import Any

from opsflow.importing.fields import Context, Fields, NameRule, Names
from opsflow.importing.layers import Layers
from opsflow.importing.model import OpsWorksStack
from opsflow.spec.users import SYSTEM_USERS, ssh_public_key_problem

USER_NAMES = NameRule(
    "user name", re.compile(r"^[a-z][a-z0-9_-]{0,30}$"), 31, "user", letter_first=True, also="_"
)


def map_users(found: OpsWorksStack, ctx: Context, layers: Layers) -> list[dict[str, Any]]:
    user_names = Names(USER_NAMES, ctx.report)
    for system in SYSTEM_USERS:
        user_names.reserve(system, "a system account")
    users: list[dict[str, Any]] = []
    for resource in found.users:
        fields = ctx.fields(resource)
        user = _user(fields, user_names)
        fields.finish()
        if user is not None:
            users.append(user)
    return users


def _user(fields: Fields, user_names: Names) -> dict[str, Any] | None:
    arn = fields.text("IamUserArn")
    given = fields.text("SshUsername") or (arn.rsplit("/", 1)[-1] if arn else None)
    key = fields.text("SshPublicKey")
    sudo = fields.flag("AllowSudo")  # describe-permissions, where an importer found it
    ssh = fields.flag("AllowSsh")
    fields.take("Name")  # describe-user-profiles: the IAM user's name, as in IamUserArn
    fields.take("Level")
    fields.drop("AllowSelfManagement", "opsflow users' keys are changed in the stack file")
    who = given or fields.where
    if ssh is False:
        fields.note("AllowSsh", f"{who} had no SSH access to the stack: left out")
        return None
    if key is None:
        fields.note("SshPublicKey", f"{who} has no SSH public key: left out")
        return None
    problem = ssh_public_key_problem(key)
    if problem is not None:
        fields.note("SshPublicKey", f"{who}'s key is refused ({problem}): left out")
        return None
    name = user_names.give(given, fields.where, "SshUsername")
    if sudo is None:
        fields.note("AllowSudo", f"{name}: no stack permissions in the input: sudo false")
    if arn is not None:
        fields.note(
            "IamUserArn",
            f"{name}: the IAM user is not carried over (opsflow users are Unix users with a key)",
        )
    return {"name": name, "ssh_public_key": key.strip(), "sudo": bool(sudo)}
