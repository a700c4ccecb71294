"""Which blobs of the artifact store to delete: those no live reference needs, stored (or
last stored again) longer ago than the retention period. Pure; runtime/artifact_pruning.py
gathers the facts and deletes."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

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


def due(last: datetime | None, *, now: datetime, every: timedelta = PRUNE_EVERY) -> bool:
    """Whether a prune is due, the last one having run at `last` (None: never)."""
    return last is None or now - last >= every or last > now
