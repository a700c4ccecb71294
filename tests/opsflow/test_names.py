"""The name rules every caller (spec, CLI, update validators) goes through."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsflow import names
from opsflow.errors import InvalidInput

LABEL = st.from_regex(names.HOSTNAME, fullmatch=True)


@given(LABEL)
def test_an_rfc_1123_label_is_a_hostname(hostname: str) -> None:
    assert names.hostname_problem(hostname) is None
    assert names.check_hostname(hostname, "--hostname") == hostname


@pytest.mark.parametrize("bad", ["", "Web1", "web_1", "-web", "web-", "a" * 64, "x;rm", "a.b"])
def test_anything_else_is_refused_naming_the_field(bad: str) -> None:
    problem = names.hostname_problem(bad)
    assert problem == f"{bad!r} is not a valid hostname (must match {names.HOSTNAME.pattern})"
    with pytest.raises(InvalidInput) as raised:
        names.check_hostname(bad, "--hostname")
    assert str(raised.value) == f"--hostname: {problem}"


def test_the_field_defaults_to_hostname() -> None:
    with pytest.raises(InvalidInput, match=r"^hostname: 'X' is not a valid hostname"):
        names.check_hostname("X")
