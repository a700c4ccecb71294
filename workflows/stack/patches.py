"""The stack workflow's `workflow.patched` ids: each names a change to the commands the
stack issues, so runs recorded before it replay as they ran (one place, so no id is used
for two changes)."""

from __future__ import annotations

from typing import Final

# A signal to an instance whose workflow has ended forgets that instance instead of
# failing the handler (delete, a configure round) that sent it.
SEND_TO_ENDED: Final = "stack-send-to-ended-instance"
# Runs read their configuration from a snapshot in the artifact store, published once per
# configuration generation (the publish activity runs before the commands that name it).
SNAPSHOTS: Final = "stack-configuration-snapshots"
# An apply that changes the stack's users runs a configure round, which converges them.
USERS_CONFIGURE: Final = "stack-users-configure"
