"""App releases on an instance: names, which to keep, what rollback returns to.

OpsWorks kept the last five releases of an app for rollback; so does opsflow.
"""

from __future__ import annotations

from collections.abc import Sequence

KEEP_RELEASES = 5


def release_name(deployment_number: int, revision: str | None) -> str:
    """Sortable and readable: `0007-3f2a9c1` (the deployment number, then the revision)."""
    suffix = "".join(c for c in (revision or "local") if c.isalnum() or c in "._-")[:40]
    return f"{deployment_number:04d}-{suffix or 'local'}"


def releases_to_remove(
    releases: Sequence[str], current: str, keep: int = KEEP_RELEASES
) -> list[str]:
    """The oldest releases beyond `keep`, never the current one."""
    ordered = sorted(releases)
    kept = set(ordered[-keep:]) | {current}
    return [r for r in ordered if r not in kept]


def previous_release(releases: Sequence[str], current: str) -> str | None:
    """The release before `current`, what a rollback re-activates; None if there is none."""
    older = [r for r in sorted(releases) if r < current]
    return older[-1] if older else None
