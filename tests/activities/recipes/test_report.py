"""The remote scripts' output, parsed once into a Report."""

from __future__ import annotations

from activities.recipes.report import Claim, Report, RunState, parse

FINISHED = """new=1
staged=1
claim=new
state=done
exit=1
recipe=web::b
recipes=web::a web::b
manager=shell
started=2026-01-01T00:00:00Z
finished=2026-01-01T00:00:02Z
release=20260101000000
previous_release=
app_error=app shop: cannot write attributes.json
---
2026-01-01T00:00:00Z opsflow: running web::a
a=b printed by a recipe, after the separator: log, not a field
"""


def test_a_finished_run_is_its_fields_and_its_whole_log() -> None:
    report = parse(FINISHED)
    assert report.is_staged and not report.lacks_staging and report.newly_staged
    assert report.claim == Claim.NEW and report.state == RunState.DONE
    outcome = report.outcome(attached=True)
    assert outcome.exit_code == 1 and outcome.recipe == "web::b"
    assert outcome.recipes == ["web::a", "web::b"] and outcome.manager == "shell"
    assert outcome.release == "20260101000000" and outcome.previous_release == ""
    assert outcome.app_error == "app shop: cannot write attributes.json"
    assert outcome.attached and not outcome.cancelled
    assert outcome.log.endswith("a=b printed by a recipe, after the separator: log, not a field\n")


def test_missing_staging_says_what_is_missing_and_nothing_else() -> None:
    report = parse("app=0\nstaged=0\n")
    assert report.lacks_staging and not report.is_staged
    assert report.app_missing and not report.cookbooks_missing
    assert report.claim is None and report.state is None and report.log == ""


def test_a_run_still_going_or_gone_and_an_unknown_word() -> None:
    assert parse("state=pending\n").state == RunState.PENDING
    assert parse("state=died\n").state == RunState.DIED
    assert parse("claim=busy\n").claim == Claim.BUSY
    report: Report = parse("claim=maybe\nstaged=2\n")
    assert report.claim is None and report.staged == "2" and not report.is_staged


def test_an_outcome_without_an_exit_code_is_a_failure() -> None:
    assert parse("state=done\nexit=\n---\n").outcome(attached=False).exit_code == 1


def test_a_cancelled_run_is_marked_so() -> None:
    assert parse("state=done\nexit=130\ncancelled=1\n---\n").outcome(attached=False).cancelled
