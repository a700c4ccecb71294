"""App releases deployed by the recipe runner on a real local instance: deploy, keep the
newest releases, a failed deploy, rollback, undeploy, secrets kept out of logs, a retried
deploy, bad names."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.recipes import runner
from opsflow import settings
from opsflow.errors import ErrorType
from opsflow.messages import AppAction, AppRelease, LaunchResult, RecipeRunResult, RunContext
from opsflow.releases import release_name
from opsflow.secrets import encrypt
from opsflow.spec import ConfigurationManager
from runtime import run_logs, tree_cache
from runtime.artifacts import shared_store
from tests.activities.conftest import STACK, Runner, lines, run, runner_for, write_tree
from tests.activities.recipes.test_runner import SshSpy

pytestmark = pytest.mark.integration

APP = "shop-app"
SECRET = "s3cr3t pa55 'word'"

RECIPES = {
    "app/deploy.sh": """
printf '%s|%s|%s\\n' "$OPSFLOW_RELEASE" "$OPSFLOW_PREVIOUS_RELEASE" "$OPSFLOW_RELEASE_PATH" \
  >> deploys.txt
env | grep -E '^(OPSFLOW_APP|OPSFLOW_DEPLOY_TO|GREETING)=' | sort > deploy-env.txt
cp "$OPSFLOW_ATTRIBUTES" deploy-attributes.json
cat "$OPSFLOW_RELEASE_PATH/index.html"
""",
    "app/leak.sh": 'echo "connecting with password $DB_PASSWORD"\n',
    "app/names.sh": 'printf "%s|%s|%s\\n" "$APP_NAME" "$APP_RELEASE" "$RUN_DIR" > names.txt\n',
    "app/fail.sh": 'echo "password $DB_PASSWORD rejected" >&2\nexit 4\n',
    "app/undeploy.sh": """
printf '%s|%s\\n' "$OPSFLOW_RELEASE_PATH" "$(readlink "$OPSFLOW_DEPLOY_TO/current")" \
  > undeployed.txt
""",
}


@pytest.fixture
def acts(tmp_path: Path) -> runner.RecipeActivities:
    cookbooks = write_tree(tmp_path / "cookbooks", RECIPES)
    return runner_for(
        RunContext(
            configuration={"opsflow": {"stack": {"name": STACK}}},
            recipes=[],
            configuration_manager=ConfigurationManager.SHELL,
            cookbooks_dir=str(cookbooks),
        )
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "app source", {"index.html": "version 1\n", "lib/x.txt": "x"})


def app_dir(instance: LaunchResult) -> Path:
    return Path(instance.root) / "srv/www" / APP


def current(instance: LaunchResult) -> str | None:
    link = app_dir(instance) / "current"
    return os.readlink(link).rpartition("/")[2] if link.is_symlink() else None


def releases(instance: LaunchResult) -> list[str]:
    directory = app_dir(instance) / "releases"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def deploy(
    acts: runner.RecipeActivities,
    request_for: Runner,
    number: int,
    source: Path | None,
    recipes: list[str] | None = None,
    run_id: str | None = None,
    **fields: Any,
) -> RecipeRunResult:
    app = AppRelease(
        app=APP,
        action=AppAction.DEPLOY,
        release=release_name(number, f"rev{number}"),
        revision=f"rev{number}",
        source_dir=str(source) if source else None,
        **fields,
    )
    request = request_for(run_id or f"deploy-{number}", recipes or ["app::deploy"], app=app)
    return await run(acts, request)


async def act(
    acts: runner.RecipeActivities,
    request_for: Runner,
    action: AppAction,
    run_id: str,
    recipes: list[str] | None = None,
) -> RecipeRunResult:
    app = AppRelease(app=APP, action=action)
    return await run(acts, request_for(run_id, recipes or [], event=action.value, app=app))


async def test_a_second_deploy_switches_current_and_reports_the_previous_release(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
) -> None:
    first = await deploy(acts, request_for, 1, source, environment={"GREETING": "hi $(there)"})
    assert (first.release, first.previous_release) == ("0001-rev1", None)
    (source / "index.html").write_text("version 2\n")
    second = await deploy(acts, request_for, 2, source, environment={"GREETING": "hi $(there)"})
    assert (second.release, second.previous_release) == ("0002-rev2", "0001-rev1")
    assert "version 2" in second.log_tail

    root, top = Path(instance.root), app_dir(instance)
    assert current(instance) == "0002-rev2" and releases(instance) == ["0001-rev1", "0002-rev2"]
    assert (top / "current/index.html").read_text() == "version 2\n"
    assert (top / "releases/0001-rev1/index.html").read_text() == "version 1\n"
    assert (top / "current/lib/x.txt").read_text() == "x"
    assert lines(root / "deploys.txt") == [
        f"0001-rev1||{top}/releases/0001-rev1",
        f"0002-rev2|0001-rev1|{top}/releases/0002-rev2",
    ]
    assert lines(root / "deploy-env.txt") == [
        "GREETING=hi $(there)",
        f"OPSFLOW_APP={APP}",
        f"OPSFLOW_DEPLOY_TO={top}",
    ]
    attributes = json.loads((root / "deploy-attributes.json").read_text())
    assert attributes["opsflow"] == {"stack": {"name": STACK}}
    assert attributes["deploy"] == {
        APP: {
            "application": APP,
            "action": "deploy",
            "revision": "rev2",
            "release": "0002-rev2",
            "release_path": f"{top}/releases/0002-rev2",
            "deploy_to": str(top),
            "current_path": f"{top}/current",
            "previous_release": "0001-rev1",
            "environment": {"GREETING": "hi $(there)"},
        }
    }
    # the code was staged once per content hash, and nothing is left aside
    state = root / "var/lib/opsflow"
    assert len(list((state / "apps").iterdir())) == 2
    assert not list((state / "tmp").iterdir())
    assert not [p for p in (top / "releases").iterdir() if p.name.startswith(".")]


async def test_a_deploy_with_its_code_is_one_ssh_command(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = SshSpy(monkeypatch)
    await deploy(acts, request_for, 1, source)
    assert len(spy.commands) == 1 and "app" in spy.payloads[0]
    spy.reset()
    await deploy(acts, request_for, 2, source)  # same code: not sent again
    assert len(spy.commands) == 1 and spy.payloads == [{"run"}]
    assert current(instance) == "0002-rev2"


async def test_big_app_code_is_sent_only_when_the_instance_lacks_it(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "SPECULATIVE_STAGE_BYTES", 0)
    spy = SshSpy(monkeypatch)
    await deploy(acts, request_for, 1, source)
    assert len(spy.commands) == 2
    assert (app_dir(instance) / "current/index.html").read_text() == "version 1\n"


async def test_a_deploy_without_code_creates_an_empty_release(
    acts: runner.RecipeActivities, request_for: Runner, instance: LaunchResult
) -> None:
    result = await deploy(acts, request_for, 1, None, recipes=["app::leak"])
    assert result.release == "0001-rev1"
    assert list((app_dir(instance) / "current").iterdir()) == []


async def test_only_the_newest_five_releases_are_kept(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
) -> None:
    for number in range(1, 8):
        await deploy(acts, request_for, number, source)
    assert releases(instance) == [release_name(n, f"rev{n}") for n in range(3, 8)]
    assert current(instance) == "0007-rev7"


async def test_a_failed_deploy_leaves_current_on_the_previous_release(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
) -> None:
    await deploy(acts, request_for, 1, source)
    with pytest.raises(ApplicationError) as raised:
        await deploy(acts, request_for, 2, source, recipes=["app::deploy", "app::fail"])
    assert raised.value.type == ErrorType.RECIPE_FAILED and raised.value.non_retryable
    assert "recipe app::fail failed with exit code 4" in raised.value.message
    assert current(instance) == "0001-rev1" and releases(instance) == ["0001-rev1"]
    _, text = run_logs.read_run_log(STACK, "web1", "deploy-2")
    assert "release 0002-rev2 removed; current stays 0001-rev1" in text


async def test_rollback_re_points_current_to_the_release_before_it(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
) -> None:
    for number in (1, 2, 3):
        await deploy(acts, request_for, number, source)
    back = await act(acts, request_for, AppAction.ROLLBACK, "rollback-1", ["app::deploy"])
    assert (back.release, back.previous_release) == ("0002-rev2", "0003-rev3")
    assert current(instance) == "0002-rev2"
    # the deploy recipes ran against the release rolled back to
    top = app_dir(instance)
    assert lines(Path(instance.root) / "deploys.txt")[-1] == (
        f"0002-rev2|0003-rev3|{top}/releases/0002-rev2"
    )
    again = await act(acts, request_for, AppAction.ROLLBACK, "rollback-2")
    assert (again.release, again.previous_release) == ("0001-rev1", "0002-rev2")

    with pytest.raises(ApplicationError) as raised:
        await act(acts, request_for, AppAction.ROLLBACK, "rollback-3")
    assert raised.value.type == ErrorType.RECIPE_FAILED and raised.value.non_retryable
    first_line = raised.value.message.splitlines()[0]
    assert first_line == f"{STACK}/web1: no earlier release of {APP} on web1 to roll back to"
    assert current(instance) == "0001-rev1"
    assert releases(instance) == ["0001-rev1", "0002-rev2", "0003-rev3"]


async def test_rollback_of_an_app_never_deployed_fails_clearly(
    acts: runner.RecipeActivities, request_for: Runner
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await act(acts, request_for, AppAction.ROLLBACK, "rollback-1", ["app::deploy"])
    assert f"no earlier release of {APP} on web1 to roll back to" in raised.value.message
    assert raised.value.non_retryable


async def test_undeploy_runs_its_recipes_then_removes_current_and_the_releases(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
) -> None:
    for number in (1, 2):
        await deploy(acts, request_for, number, source)
    result = await act(acts, request_for, AppAction.UNDEPLOY, "undeploy-1", ["app::undeploy"])
    assert (result.release, result.previous_release) == (None, "0002-rev2")
    top = app_dir(instance)
    # the recipe ran while the release was still current
    assert lines(Path(instance.root) / "undeployed.txt") == [
        f"{top}/releases/0002-rev2|releases/0002-rev2"
    ]
    assert not top.exists()


async def test_secret_values_never_reach_the_logs_or_failure_messages(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
) -> None:
    # Secure values travel encrypted (activity inputs are kept in workflow history): the
    # runner decrypts them on the worker.
    env = {"DB_PASSWORD": encrypt(settings.secret_key(), SECRET), "EMPTY": ""}
    assert (
        SECRET
        not in AppRelease(app=APP, action=AppAction.DEPLOY, environment=env).model_dump_json()
    )
    ok = await deploy(acts, request_for, 1, source, recipes=["app::leak"], environment=env)
    assert "connecting with password ******" in ok.log_tail and SECRET not in ok.log_tail
    _, text = run_logs.read_run_log(STACK, "web1", "deploy-1")
    assert "password ******" in text and SECRET not in text

    with pytest.raises(ApplicationError) as raised:
        await deploy(acts, request_for, 2, source, recipes=["app::fail"], environment=env)
    error = raised.value
    assert "password ****** rejected" in error.message and SECRET not in error.message
    assert all(SECRET not in str(detail) for detail in error.details)
    meta, text = run_logs.read_run_log(STACK, "web1", "deploy-2")
    assert "password ****** rejected" in text and SECRET not in text
    assert SECRET not in json.dumps(meta)

    # the instance needs them: its attributes carry them, readable by their owner only
    run_dir = Path(instance.root) / "var/lib/opsflow/runs/deploy-2"
    attributes = run_dir / "attributes.json"
    assert json.loads(attributes.read_text())["deploy"][APP]["environment"] == {
        "DB_PASSWORD": SECRET,
        "EMPTY": "",
    }
    for private in (attributes, run_dir / "run.sh"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600


async def test_a_retried_deploy_reattaches_and_deploys_once(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
) -> None:
    first = await deploy(acts, request_for, 1, source)
    again = await deploy(acts, request_for, 1, source)
    assert (first.attached, again.attached) == (False, True)
    assert (again.release, again.previous_release) == ("0001-rev1", None)
    assert len(lines(Path(instance.root) / "deploys.txt")) == 1
    assert releases(instance) == ["0001-rev1"]


async def test_a_lost_rollback_started_afresh_keeps_its_first_decision(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    source: Path,
) -> None:
    for number in (1, 2, 3):
        await deploy(acts, request_for, number, source)
    await act(acts, request_for, AppAction.ROLLBACK, "rollback-1")
    # As if the rollback had switched `current`, then died before writing its exit code:
    # started afresh, it must not go back one more release.
    runs = Path(instance.root) / "var/lib/opsflow/runs"
    (runs / "rollback-1/exit").unlink()
    (runs / "rollback-1/pid").write_text("999999\n")
    again = await act(acts, request_for, AppAction.ROLLBACK, "rollback-1")
    assert not again.attached and (runs / "rollback-1.lost-1").is_dir()
    assert (again.release, again.previous_release) == ("0002-rev2", "0003-rev3")
    assert current(instance) == "0002-rev2"
    assert "as decided by an earlier attempt: back to 0002-rev2" in again.log_tail


@pytest.mark.parametrize(
    "name", ["shop;touch pwned", "$(touch pwned)", "../shop", "Shop", "a b", "", "x" * 40]
)
async def test_bad_app_names_are_rejected_before_anything_runs(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    name: str,
) -> None:
    app = AppRelease(app=name, action=AppAction.DEPLOY, release="0001-local")
    with pytest.raises(ApplicationError) as raised:
        await run(acts, request_for("deploy-1", ["app::deploy"], app=app))
    assert raised.value.type == ErrorType.INVALID_INPUT and raised.value.non_retryable
    assert not (Path(instance.root) / "var").exists()
    assert not list(Path(instance.root).rglob("pwned"))


@pytest.mark.parametrize(
    "fields",
    [
        {"release": "../x"},
        {"release": None},
        {"environment": {"BAD NAME": "x"}},
        {"deploy_to": "relative/path"},
        {"deploy_to": "/srv/www/../etc"},
        {"source_digest": "NOT-HEX"},
    ],
)
async def test_bad_app_fields_are_rejected(
    acts: runner.RecipeActivities,
    request_for: Runner,
    instance: LaunchResult,
    fields: dict[str, Any],
) -> None:
    app = AppRelease(app=APP, action=AppAction.DEPLOY, **({"release": "0001-local"} | fields))
    with pytest.raises(ApplicationError) as raised:
        await run(acts, request_for("deploy-1", ["app::deploy"], app=app))
    assert raised.value.type == ErrorType.INVALID_INPUT
    assert not (Path(instance.root) / "var").exists()


async def test_an_app_environment_with_its_own_ifs_still_runs_every_recipe(
    acts: runner.RecipeActivities, request_for: Runner, source: Path, instance: LaunchResult
) -> None:
    done = await deploy(
        acts,
        request_for,
        1,
        source,
        recipes=["app::deploy", "app::leak"],
        environment={"IFS": ":", "DB_PASSWORD": "open"},
    )
    assert done.recipes == ["app::deploy", "app::leak"]
    assert "connecting with password open" in done.log_tail
    assert current(instance) == release_name(1, "rev1")


async def test_the_apps_own_variables_reach_its_recipes_whatever_their_names(
    acts: runner.RecipeActivities, request_for: Runner, source: Path, instance: LaunchResult
) -> None:
    names = {"APP_NAME": "theirs", "APP_RELEASE": "v9", "RUN_DIR": "/their/dir"}
    await deploy(acts, request_for, 1, source, recipes=["app::names"], environment=names)
    assert (Path(instance.root) / "names.txt").read_text() == "theirs|v9|/their/dir\n"


async def test_app_code_comes_from_the_store_on_any_worker(
    acts: runner.RecipeActivities, request_for: Runner, instance: LaunchResult, source: Path
) -> None:
    blob = tree_cache.publish(shared_store(), source, cache=False)
    gone = source.with_name("fetching worker")
    source.rename(gone)
    result = await deploy(acts, request_for, 1, source, source_blob=blob)
    assert result.release == "0001-rev1"
    assert (app_dir(instance) / "current/index.html").read_text() == "version 1\n"
