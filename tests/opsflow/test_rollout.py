"""Rollout decisions: batches, failure budgets, compensation order, release keeping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsflow.errors import InvalidInput
from opsflow.releases import previous_release, release_name, releases_to_remove
from opsflow.rollout import (
    ONE_INSTANCE,
    Amount,
    Strategy,
    batch_of,
    canary_batch,
    over_budget,
    parse_amount,
    parse_batch,
    parse_max_failures,
    plan_batches,
    rollback_order,
)

HOSTS = [f"web{i}" for i in range(1, 11)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", Amount(3, False)), ("25%", Amount(25, True)), (" 1 ", Amount(1, False))],
)
def test_amounts(text: str, expected: Amount) -> None:
    assert parse_amount("--batch", text, allow_zero=False) == expected


@pytest.mark.parametrize(
    ("option", "text", "allow_zero", "message"),
    [
        ("--batch", "0", False, "--batch: must be at least 1"),
        ("--max-failures", "150%", True, "--max-failures: 150% is more than 100%"),
        ("--batch", "two", False, "--batch: 'two' is not a count"),
        ("--batch", "-1", False, "is not a count"),
    ],
)
def test_bad_amounts_name_the_option(
    option: str, text: str, allow_zero: bool, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_amount(option, text, allow_zero=allow_zero)


def test_rolling_in_percent_and_canary_then_the_rest() -> None:
    assert plan_batches(HOSTS, Strategy.ROLLING, Amount(25, True)) == [
        HOSTS[0:3],
        HOSTS[3:6],
        HOSTS[6:9],
        HOSTS[9:10],
    ]
    assert plan_batches(HOSTS, Strategy.CANARY, Amount(1, False))[0] == ["web1"]
    assert plan_batches(HOSTS, Strategy.ALL_AT_ONCE) == [HOSTS]
    assert plan_batches([], Strategy.ROLLING, Amount(2, False)) == []


@given(
    st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=30, unique=True),
    st.sampled_from(list(Strategy)),
    st.integers(min_value=1, max_value=100),
    st.booleans(),
)
def test_every_target_in_exactly_one_nonempty_batch(
    hosts: list[str], strategy: Strategy, number: int, percent: bool
) -> None:
    batches = plan_batches(hosts, strategy, Amount(number, percent))
    assert [h for b in batches for h in b] == hosts
    assert all(batches)


def test_failure_budget() -> None:
    assert not over_budget(0, 10, None)
    assert over_budget(1, 10, None)  # by default any failure stops the deployment
    assert not over_budget(2, 10, Amount(20, True))
    assert over_budget(3, 10, Amount(20, True))
    assert not over_budget(2, 10, Amount(2, False))


def test_compensation_is_in_reverse_order() -> None:
    assert rollback_order(["web1", "web2", "web3"]) == ["web3", "web2", "web1"]


def test_releases_keep_five_and_roll_back_to_the_one_before() -> None:
    releases = [release_name(n, "abc123") for n in range(1, 8)]
    assert releases[0] == "0001-abc123"
    assert releases_to_remove(releases, current=releases[-1]) == releases[:2]
    # a rolled-back (older) current release is never removed
    assert releases_to_remove(releases, current=releases[0]) == [releases[1]]
    assert previous_release(releases, releases[3]) == releases[2]
    assert previous_release(releases, releases[0]) is None
    assert release_name(3, "feature/x; rm -rf") == "0003-featurexrm-rf"


def test_a_batch_is_at_least_one_instance_and_a_failure_budget_may_be_none() -> None:
    assert parse_batch("25%") == Amount(25, True)
    with pytest.raises(InvalidInput, match=r"^--batch: must be at least 1"):
        parse_batch("0")
    assert parse_max_failures("0") == Amount(0, False)
    with pytest.raises(InvalidInput, match=r"^--max-failures: 150% is more than 100%"):
        parse_max_failures("150%")


@pytest.mark.parametrize("batch", [None, ""])
def test_a_canary_without_a_batch_starts_with_one_instance(batch: str | None) -> None:
    assert canary_batch(batch) == ONE_INSTANCE == Amount(1, False)
    assert batch_of(Strategy.CANARY, batch) == ONE_INSTANCE
    assert batch_of(Strategy.ROLLING, batch) is None
    assert batch_of(Strategy.ALL_AT_ONCE, batch) is None


@given(st.integers(1, 100), st.booleans(), st.sampled_from(list(Strategy)))
def test_a_batch_asked_for_is_the_one_used(number: int, percent: bool, strategy: Strategy) -> None:
    amount = Amount(number, percent)
    assert batch_of(strategy, str(amount)) == amount
    assert parse_batch(str(amount)) == amount
