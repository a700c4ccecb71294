"""Rollout decisions for deployments: batches, failure budgets, what to roll back.

Pure functions over hostnames, for the apps-and-deployments issue (the DeploymentWorkflow
will call them); nothing here knows Temporal or SSH.

    all-at-once  one batch of every target
    rolling      batches of N or P% of the targets (at least one instance each)
    canary       a first batch of N or P%, then a gate (approval or bake time), then the
                 rest as in rolling
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from opsflow.errors import InvalidInput

_AMOUNT = re.compile(r"^(?P<number>\d+)(?P<percent>%?)$")


class Strategy(StrEnum):
    ALL_AT_ONCE = "all-at-once"
    ROLLING = "rolling"
    CANARY = "canary"


@dataclass(frozen=True)
class Amount:
    """A count of instances, or a percentage of the targets."""

    number: int
    percent: bool

    def of(self, total: int) -> int:
        if not self.percent:
            return self.number
        return math.ceil(total * self.number / 100)

    def __str__(self) -> str:
        return f"{self.number}{'%' if self.percent else ''}"


def parse_amount(option: str, text: str, *, allow_zero: bool, max_percent: int = 100) -> Amount:
    """`3` or `25%`; refuses what cannot be meant (`0` batches, `150%`), naming the option."""
    found = _AMOUNT.fullmatch(text.strip())
    if found is None:
        raise InvalidInput(f"{option}: {text!r} is not a count (3) or a percentage (25%)")
    amount = Amount(int(found["number"]), bool(found["percent"]))
    if amount.number == 0 and not allow_zero:
        raise InvalidInput(f"{option}: must be at least 1 (or 1%)")
    if amount.percent and amount.number > max_percent:
        raise InvalidInput(f"{option}: {amount} is more than {max_percent}%")
    return amount


# One instance at a time: a rolling deployment's batch and a canary's first one, unless
# --batch says otherwise (the CLI help and the canary check state it too).
ONE_INSTANCE = Amount(1, False)
BATCH_OPTION = "--batch"
MAX_FAILURES_OPTION = "--max-failures"


def parse_batch(text: str) -> Amount:
    """`--batch`: instances per batch; a batch of none could never finish."""
    return parse_amount(BATCH_OPTION, text, allow_zero=False)


def parse_max_failures(text: str) -> Amount:
    """`--max-failures`: failed instances tolerated; none (0) is the default."""
    return parse_amount(MAX_FAILURES_OPTION, text, allow_zero=True)


def canary_batch(batch: str | None) -> Amount:
    """A canary's first batch: as asked, or one instance."""
    return parse_batch(batch) if batch else ONE_INSTANCE


def batch_of(strategy: Strategy, batch: str | None) -> Amount | None:
    """The batch size a deployment asked for (a canary's default included)."""
    if strategy == Strategy.CANARY:
        return canary_batch(batch)
    return parse_batch(batch) if batch else None


def plan_batches(
    targets: Sequence[str], strategy: Strategy, batch: Amount | None = None
) -> list[list[str]]:
    """The batches, in order: every target exactly once, none empty."""
    hosts = list(targets)
    if not hosts:
        return []
    if strategy == Strategy.ALL_AT_ONCE:
        return [hosts]
    size = max(1, (batch or ONE_INSTANCE).of(len(hosts)))
    if strategy == Strategy.CANARY:
        first, rest = hosts[:size], hosts[size:]
        if not rest:
            return [first]
        return [first, *(rest[i : i + size] for i in range(0, len(rest), size))]
    return [hosts[i : i + size] for i in range(0, len(hosts), size)]


def failure_budget(total: int, max_failures: Amount | None) -> int:
    """How many instances may fail before the deployment stops (default: none)."""
    if max_failures is None:
        return 0
    return min(total, max_failures.of(total) if max_failures.percent else max_failures.number)


def over_budget(failed: int, total: int, max_failures: Amount | None) -> bool:
    return failed > failure_budget(total, max_failures)


def rollback_order(changed: Sequence[str]) -> list[str]:
    """Compensation undoes in reverse: the last instance changed is restored first."""
    return list(reversed(changed))
