"""The pruning decision: unreferenced and old blobs go, the rest stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsflow.artifact_pruning import DEFAULT_RETENTION, due, prunable

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_only_old_blobs_no_live_reference_needs_are_pruned() -> None:
    old = NOW - DEFAULT_RETENTION - timedelta(seconds=1)
    recent = NOW - DEFAULT_RETENTION + timedelta(hours=1)
    stored = {"b" * 64: old, "a" * 64: old, "c" * 64: recent, "d" * 64: old}
    assert prunable(stored, {"d" * 64}, now=NOW) == ["a" * 64, "b" * 64]


def test_the_retention_period_is_the_callers() -> None:
    stored = {"a" * 64: NOW - timedelta(days=2)}
    assert prunable(stored, set(), now=NOW, retention=timedelta(days=1)) == ["a" * 64]
    assert prunable(stored, set(), now=NOW, retention=timedelta(days=3)) == []


def test_a_prune_is_due_daily_or_when_the_clock_went_back() -> None:
    assert due(None, now=NOW)
    assert not due(NOW - timedelta(hours=23), now=NOW)
    assert due(NOW - timedelta(days=1), now=NOW)
    assert due(NOW + timedelta(days=2), now=NOW)
