"""Which blobs of the artifact store to delete: those no live reference needs, stored (or
last stored again) longer ago than the retention period. Pure; runtime/artifact_pruning.py
gathers the facts and deletes."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from opsflow.releases import KEEP_RELEASES

DEFAULT_RETENTION = timedelta(days=30)
# Listing a whole bucket is not free: a worker prunes at most this often.
PRUNE_EVERY = timedelta(days=1)


def prunable(
    stored: Mapping[str, datetime],
    live: Collection[str],
    *,
    now: datetime,
    retention: timedelta = DEFAULT_RETENTION,
) -> list[str]:
    """The digests to delete, sorted: not in `live`, and stored before `now - retention`
    (a blob put recently may be about to be referenced: a CLI uploads before it applies)."""
    cutoff = now - retention
    keep = set(live)
    return sorted(digest for digest, at in stored.items() if digest not in keep and at < cutoff)


def with_reference(held: Sequence[str], digest: str, keep: int = KEEP_RELEASES) -> list[str]:
    """A source's references after it resolved to `digest`: newest first, each once, the
    newest `keep` (an app's kept releases may be rolled back to, and a heal deploys the
    current one again: their code must stay fetchable)."""
    return [digest, *[d for d in held if d != digest]][: max(keep, 1)]


def due(last: datetime | None, *, now: datetime, every: timedelta = PRUNE_EVERY) -> bool:
    """Whether a prune is due, the last one having run at `last` (None: never)."""
    return last is None or now - last >= every or last > now
