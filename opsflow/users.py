"""Stack users on an instance (OpsWorks' user profiles): which of the stack's users an
instance gets, on which events they are converged, and the document the remote step
(activities/recipes/scripts/users.sh) converges the instance to.

The remote step creates what is missing and removes what left the file, but only what
opsflow itself manages: the users it created (deleted with userdel) and the existing
accounts it was given (only their stack key and sudoers entry go).
"""

from __future__ import annotations

from collections.abc import Sequence

from opsflow.spec import UserSpec

# OpsWorks converged its user profiles on these events, before the layers' recipes.
USER_EVENTS = frozenset({"setup", "configure"})


def instance_users(users: Sequence[UserSpec], layers: Sequence[str]) -> list[UserSpec]:
    """The stack's users an instance of `layers` gets: those limited to no layer, and
    those limited to a layer it is in; in the file's order."""
    return [u for u in users if u.layers is None or set(u.layers) & set(layers)]


def users_to_converge(
    event: str, users: Sequence[UserSpec] | None, *, runs_anyway: bool
) -> list[UserSpec] | None:
    """The users a run of `event` converges the instance to, or None for no user step.

    `users` is the run context's: this instance's users, or None when the stack declares
    none. A stack with users converges on every setup and configure, even with no recipe to
    run (a user removed from the file must leave the instance). A stack without users
    converges to none only in a run that happens anyway (`runs_anyway`): that removes the
    users opsflow made before the file dropped `users:`, at no cost to stacks that never
    had any."""
    if event not in USER_EVENTS:
        return None
    if users is not None:
        return list(users)
    return [] if runs_anyway else None


def users_document(users: Sequence[UserSpec]) -> str:
    """The users file the remote step reads: one `NAME UID SUDO KEY` line per user (UID `-`
    for the next free one, SUDO 1 or 0, KEY the whole authorized_keys line). Names are
    checked Unix names and keys one checked line (opsflow.spec.users), so a line splits on
    its first three blanks."""
    return "".join(
        f"{u.name} {u.uid if u.uid is not None else '-'} {int(u.sudo)} {u.ssh_public_key}\n"
        for u in users
    )
