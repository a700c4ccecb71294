"""Configure coalescing: a burst of online/offline changes becomes few configure rounds.

The stack marks a round pending on every change; a round starts after a short quiet
period and covers every instance online at that moment. Each instance keeps only the
newest configure it has been sent, so a round that is overtaken never runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from opsflow.messages import InstanceCommand, InstanceCommandKind

# Long enough to gather the instances of one `stack apply` that come online together,
# short enough that nobody waits for it.
QUIET_PERIOD_SECONDS = 2.0


def is_superseded(command: InstanceCommand, queued: Sequence[InstanceCommand]) -> bool:
    """A configure is pointless when a newer configure is already queued behind it."""
    if command.kind != InstanceCommandKind.RUN or command.event != "configure":
        return False
    if command.reply_to is not None:
        return False  # asked for explicitly by a user: it runs and reports
    return any(
        c.kind == InstanceCommandKind.RUN
        and c.event == "configure"
        and c.generation > command.generation
        for c in queued
    )
