"""The recipe runner against a real local instance: shell recipes, and what every manager
shares (names, staging, stage_only, run logs, cancellation)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import ssh
from activities.recipes import payload, remote, runner
from opsflow.errors import ErrorType
from opsflow.messages import (
    LaunchResult,
    RecipeRunInput,
    RecipeRunResult,
    RunContext,
    SshEndpoint,
)
from opsflow.spec import ConfigurationManager
from runtime import run_logs, tree_cache
from runtime.artifacts import shared_store
from tests.activities.conftest import STACK, Runner, lines, run, runner_for, write_tree

pytestmark = pytest.mark.integration

CONFIGURATION = {"opsflow": {"stack": {"name": STACK}}, "shop": {"greeting": "hello"}}

RECIPES = {
    "web/env.sh": """
env | grep '^OPSFLOW_' | sort > env.txt
pwd > cwd.txt
cp "$OPSFLOW_ATTRIBUTES" attributes.json
echo "configured $OPSFLOW_INSTANCE"
""",
    "web/count.sh": "echo ran >> count.txt\n",
    "web/fail.sh": "echo first\necho 'disk is full' >&2\necho\nexit 3\n",
    "web/slow.sh": "echo started >> slow.txt\nsleep 2\necho finished >> slow.txt\n",
    "web/shebang.sh": '#!/bin/sh\necho "executable $0" > shebang.txt\n',
    # A careless recipe: its daemon keeps the recipe's output stream open.
    "web/daemon.sh": "sleep 30 &\necho $! > daemon.pid\necho daemon started\n",
    "web/chatty.sh": 'i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i + 1)); done\n',
    # For cancellation: a recipe (and its child) that would run for ten minutes.
    "web/sleepy.sh": "echo $$ > sleepy.pid\nsleep 600 &\necho $! > sleeper.pid\nwait\n",
    # ... and one that ignores TERM, as does its child (ignored signals are inherited).
    "web/stubborn.sh": "trap '' TERM\n"
    + "echo $$ > sleepy.pid\nsleep 600 &\necho $! > sleeper.pid\nwait\n",
}


@pytest.fixture
def cookbooks(tmp_path: Path) -> Path:
    top = tmp_path / "cookbooks"
    write_tree(top, RECIPES)
    (top / "web/shebang.sh").chmod(0o755)
    return top


def activities_for(
    cookbooks: Path | None, recipes: list[str] | None = None
) -> runner.RecipeActivities:
    return runner_for(
        RunContext(
            configuration=CONFIGURATION,
            recipes=recipes or [],
            configuration_manager=ConfigurationManager.SHELL,
            cookbooks_dir=str(cookbooks) if cookbooks else None,
        )
    )


async def test_a_recipe_sees_its_environment_attributes_and_root(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    acts = activities_for(cookbooks, recipes=["web::env"])  # the context's recipes
    env = ActivityEnvironment()
    heartbeats: list[object] = []
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    result = await env.run(acts.run_recipes, request_for("web1-setup-1"))

    root = Path(instance.root)
    assert result.exit_code == 0 and not result.attached
    assert result.recipes == ["web::env"]
    assert "configured web1" in result.log_tail
    # every log line carries a UTC timestamp
    assert all(line[:4].isdigit() and line[19] == "Z" for line in result.log_tail.splitlines())
    assert (root / "cwd.txt").read_text().strip() == instance.root
    assert json.loads((root / "attributes.json").read_text()) == CONFIGURATION
    run_dir = root / "var/lib/opsflow/runs/web1-setup-1"
    assert dict(line.split("=", 1) for line in lines(root / "env.txt")) == {
        "OPSFLOW_ATTRIBUTES": str(run_dir / "attributes.json"),
        "OPSFLOW_EVENT": "setup",
        "OPSFLOW_INSTANCE": "web1",
        "OPSFLOW_ROOT": instance.root,
        "OPSFLOW_RUN_ID": "web1-setup-1",
        "OPSFLOW_STACK": STACK,
    }
    assert (run_dir / "exit").read_text().strip() == "0"
    assert heartbeats


async def test_a_daemon_started_by_a_recipe_does_not_hold_up_the_run(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    started = time.monotonic()
    try:
        result = await run(activities_for(cookbooks), request_for("r1", ["web::daemon"]))
    finally:
        pid = Path(instance.root) / "daemon.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
    assert time.monotonic() - started < 10
    assert "daemon started" in result.log_tail


async def test_an_executable_recipe_runs_with_its_shebang(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    await run(activities_for(cookbooks), request_for("r1", ["web::shebang"]))
    assert (Path(instance.root) / "shebang.txt").read_text().startswith("executable /")


async def test_recipes_run_in_order_and_the_first_failure_ends_the_run(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await run(
            activities_for(cookbooks), request_for("r1", ["web::count", "web::fail", "web::count"])
        )

    error = raised.value
    assert error.type == ErrorType.RECIPE_FAILED and error.non_retryable
    first, *last = error.message.splitlines()
    assert first == f"{STACK}/web1: recipe web::fail failed with exit code 3: disk is full"
    # the log's last lines follow in the message itself (what the Temporal UI shows first)
    assert 1 <= len(last) <= 5 and all(line.startswith("| ") for line in last)
    assert "disk is full" in last[-1]
    tail = error.details[0]
    assert isinstance(tail, str) and "first" in tail and "disk is full" in tail
    assert lines(Path(instance.root) / "count.txt") == ["ran"]


async def test_a_missing_recipe_fails_clearly(cookbooks: Path, request_for: Runner) -> None:
    with pytest.raises(ApplicationError) as raised:
        await run(activities_for(cookbooks), request_for("r1", ["web::nope"]))
    assert raised.value.type == ErrorType.RECIPE_FAILED
    assert "recipe web::nope failed with exit code 127" in str(raised.value)
    assert "recipe web::nope not found" in str(raised.value)


async def test_no_cookbooks_directory_means_every_recipe_is_missing(request_for: Runner) -> None:
    with pytest.raises(ApplicationError) as raised:
        await run(activities_for(None), request_for("r1", ["web::count"]))
    assert "not found" in str(raised.value)


async def test_no_recipes_is_a_success_without_touching_the_instance(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    result = await run(activities_for(cookbooks), request_for("r1", []))
    assert (result.exit_code, result.recipes) == (0, [])
    assert not (Path(instance.root) / "var").exists()


async def test_cookbooks_are_staged_once_per_content_hash(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads: list[str | None] = []
    add_cookbooks = payload.add_cookbooks

    def counting(tar: tarfile.TarFile, directory: str | None) -> None:
        uploads.append(directory)
        add_cookbooks(tar, directory)

    monkeypatch.setattr(payload, "add_cookbooks", counting)
    acts = activities_for(cookbooks)
    await run(acts, request_for("r1", ["web::count"]))
    await run(acts, request_for("r2", ["web::count"]))
    assert len(uploads) == 1

    (cookbooks / "web/count.sh").write_text("echo changed >> count.txt\n")
    await run(acts, request_for("r3", ["web::count"]))
    assert len(uploads) == 2
    assert lines(Path(instance.root) / "count.txt") == ["ran", "ran", "changed"]
    staged = Path(instance.root) / "var/lib/opsflow/cookbooks"
    assert len(list(staged.iterdir())) == 2
    assert not list((Path(instance.root) / "var/lib/opsflow/tmp").iterdir())


async def test_a_finished_run_is_not_run_again(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    acts = activities_for(cookbooks)
    first = await run(acts, request_for("r1", ["web::count"]))
    again = await run(acts, request_for("r1", ["web::count"]))
    assert (first.attached, again.attached) == (False, True)
    assert again.log_tail == first.log_tail
    assert lines(Path(instance.root) / "count.txt") == ["ran"]


async def test_a_retry_after_a_crash_reattaches_and_the_recipe_runs_once(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    acts = activities_for(cookbooks)
    slow = Path(instance.root) / "slow.txt"
    first = asyncio.create_task(run(acts, request_for("r1", ["web::slow"])))
    deadline = time.monotonic() + 20
    while not slow.exists():
        assert time.monotonic() < deadline and not first.done()
        await asyncio.sleep(0.05)
    first.cancel()  # the worker "dies" mid-recipe: the run goes on without it
    with pytest.raises(asyncio.CancelledError):
        await first

    result = await run(acts, request_for("r1", ["web::slow"]))
    assert result.attached and result.exit_code == 0
    assert lines(slow) == ["started", "finished"]


async def test_a_run_that_died_before_starting_is_started_afresh(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    runs = Path(instance.root) / "var/lib/opsflow/runs"
    (runs / "r1").mkdir(parents=True)  # claimed, then the attempt died before starting
    (runs / "r2").mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (runs / "r2/pid").write_text(f"{gone.pid}\n")  # started, then vanished without exit

    acts = activities_for(cookbooks)
    for run_id in ("r1", "r2"):
        result = await run(acts, request_for(run_id, ["web::count"]))
        assert not result.attached
        assert (runs / f"{run_id}.lost-1").is_dir()
    assert lines(Path(instance.root) / "count.txt") == ["ran", "ran"]


@pytest.mark.parametrize("manager", list(ConfigurationManager))
@pytest.mark.parametrize(
    "recipes",
    [
        ["web::count; touch pwned"],
        ["web::$(touch pwned)"],
        ["../web::count"],
        ["web"],
        ["web::count'"],
        ["web::count]"],
        ["web::a b"],
    ],
)
async def test_bad_recipe_names_are_rejected_before_anything_runs(
    cookbooks: Path,
    request_for: Runner,
    instance: LaunchResult,
    recipes: list[str],
    manager: ConfigurationManager,
) -> None:
    context = RunContext(
        configuration=CONFIGURATION, recipes=[], configuration_manager=manager,
        cookbooks_dir=str(cookbooks),
    )  # fmt: skip
    with pytest.raises(ApplicationError) as raised:
        await run(runner_for(context), request_for("r1", recipes))
    assert raised.value.type == ErrorType.INVALID_INPUT and raised.value.non_retryable
    assert not (Path(instance.root) / "var").exists()
    assert not list(Path(instance.root).rglob("pwned"))


async def test_values_reach_recipes_literally(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    event = "setup $(touch pwned) `touch pwned`; touch pwned '\""
    await run(activities_for(cookbooks), request_for("r1", ["web::env"], event=event))
    env = dict(line.split("=", 1) for line in lines(Path(instance.root) / "env.txt"))
    assert env["OPSFLOW_EVENT"] == event
    assert not list(Path(instance.root).rglob("pwned"))


@pytest.mark.parametrize("run_id", ["../escape", ".hidden", "a/b", "x;touch pwned", ""])
async def test_bad_run_ids_are_rejected(cookbooks: Path, request_for: Runner, run_id: str) -> None:
    with pytest.raises(ApplicationError) as raised:
        await run(activities_for(cookbooks), request_for(run_id, ["web::count"]))
    assert raised.value.type == ErrorType.INVALID_INPUT


# ---- SSH round trips --------------------------------------------------------------------


class SshSpy:
    """Counts ssh.run calls (and keeps their sizes and what their payloads carried) while
    still running them for real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.commands: list[tuple[int, int]] = []  # (len(command), len(stdin))
        self.payloads: list[set[str]] = []  # top-level names in each command's tar
        self._real = ssh.run
        monkeypatch.setattr(ssh, "run", self)
        monkeypatch.setattr(ssh, "put_files", self._no_sftp)

    def __call__(
        self,
        endpoint: SshEndpoint,
        command: str,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> tuple[int, str, str]:
        self.commands.append((len(command), len(stdin or b"")))
        names: set[str] = set()
        if stdin:
            with tarfile.open(fileobj=io.BytesIO(stdin)) as tar:
                names = {member.name.split("/")[0] for member in tar.getmembers()}
        self.payloads.append(names)
        return self._real(endpoint, command, timeout=timeout, stdin=stdin)

    def _no_sftp(self, *_: object) -> None:
        raise AssertionError("a run must not open SFTP")

    def reset(self) -> None:
        self.commands.clear()
        self.payloads.clear()


async def test_a_fresh_run_with_cookbooks_staged_is_one_ssh_command(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SshSpy(monkeypatch)
    acts = activities_for(cookbooks)
    await run(acts, request_for("r1", ["web::count"]))  # stages the cookbooks
    spy.reset()
    result = await run(acts, request_for("r2", ["web::count"]))
    assert len(spy.commands) == 1
    assert not result.attached and result.exit_code == 0
    assert lines(Path(instance.root) / "count.txt") == ["ran", "ran"]


async def test_a_first_run_on_a_new_instance_is_one_ssh_command(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SshSpy(monkeypatch)
    await run(activities_for(cookbooks), request_for("r1", ["web::count"]))
    assert len(spy.commands) == 1  # small cookbooks travel with the run
    assert lines(Path(instance.root) / "count.txt") == ["ran"]


async def test_big_cookbooks_are_sent_only_when_the_instance_lacks_them(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "SPECULATIVE_STAGE_BYTES", 0)
    spy = SshSpy(monkeypatch)
    acts = activities_for(cookbooks)
    await run(acts, request_for("r1", ["web::count"]))
    # the first says "not staged" before claiming; the second stages and runs
    assert len(spy.commands) == 2
    assert spy.payloads == [{"run"}, {"run", "cookbooks"}]
    spy.reset()
    await run(acts, request_for("r2", ["web::count"]))
    assert spy.payloads == [{"run"}]
    assert lines(Path(instance.root) / "count.txt") == ["ran", "ran"]


async def test_cookbooks_gone_from_the_instance_are_staged_again(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    acts = activities_for(cookbooks)
    await run(acts, request_for("r1", ["web::count"]))
    staged = Path(instance.root) / "var/lib/opsflow/cookbooks"
    for directory in staged.iterdir():  # this worker still believes them staged
        subprocess.run(["rm", "-rf", str(directory)], check=True)
    spy = SshSpy(monkeypatch)
    await run(acts, request_for("r2", ["web::count"]))
    assert len(spy.commands) == 2
    assert lines(Path(instance.root) / "count.txt") == ["ran", "ran"]
    assert not list((Path(instance.root) / "var/lib/opsflow/tmp").iterdir())


async def test_large_attributes_reach_the_recipe_intact_on_stdin(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    # > 200 KiB, barely compressible: far more than one argv string (128 KiB) may hold.
    noise = base64.b64encode(os.urandom(200 * 1024)).decode()
    configuration = {**CONFIGURATION, "blob": noise, "quotes": "'\"$(touch pwned)`\n\\"}
    context = RunContext(
        configuration=configuration, recipes=[], configuration_manager=ConfigurationManager.SHELL,
        cookbooks_dir=str(cookbooks),
    )  # fmt: skip

    async def source(_: RecipeRunInput) -> RunContext:
        return context

    spy = SshSpy(monkeypatch)
    result = await run(runner.RecipeActivities(source), request_for("r1", ["web::env"]))
    assert result.exit_code == 0
    received = (Path(instance.root) / "attributes.json").read_text()
    assert len(received) > 200 * 1024
    assert json.loads(received) == configuration
    assert max(size for size, _ in spy.commands) < 16 * 1024  # the command line stays small
    assert not list(Path(instance.root).rglob("pwned"))


async def test_a_retry_of_a_finished_run_is_one_command_and_writes_nothing(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run(activities_for(cookbooks), request_for("r1", ["web::count"]))
    run_dir = Path(instance.root) / "var/lib/opsflow/runs/r1"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}

    async def other(_: RecipeRunInput) -> RunContext:
        return RunContext(
            configuration={"changed": True}, recipes=[],
            configuration_manager=ConfigurationManager.SHELL, cookbooks_dir=str(cookbooks),
        )  # fmt: skip

    spy = SshSpy(monkeypatch)
    again = await run(runner.RecipeActivities(other), request_for("r1", ["web::count"]))
    assert again.attached and len(spy.commands) == 1
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    assert lines(Path(instance.root) / "count.txt") == ["ran"]
    assert not list((Path(instance.root) / "var/lib/opsflow/tmp").iterdir())


# ---- run logs on the worker -------------------------------------------------------------


async def test_the_whole_log_and_what_the_run_was_are_kept_on_the_worker(
    cookbooks: Path, request_for: Runner
) -> None:
    acts = activities_for(cookbooks)
    request = request_for("r1", ["web::chatty", "web::fail"], command_id="c-7")
    with pytest.raises(ApplicationError) as raised:
        await run(acts, request)
    tail = raised.value.details[0]
    assert isinstance(tail, str) and "line 0" not in tail  # the tail is the tail...

    meta, text = run_logs.read_run_log(STACK, "web1", "r1")
    assert "opsflow: running web::chatty" in text and "line 0" in text  # ...the log is all
    assert "disk is full" in text and tail in text
    assert all(line[:4].isdigit() and line[19] == "Z" for line in text.splitlines())
    iso = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
    assert re.match(iso, meta.pop("started")) and re.match(iso, meta.pop("finished"))
    assert meta == {
        "stack": STACK,
        "hostname": "web1",
        "run_id": "r1",
        "command_id": "c-7",
        "event": "setup",
        "recipes": ["web::chatty", "web::fail"],
        "configuration_manager": "shell",
        "exit_code": 3,
        "failed_recipe": "web::fail",
        "attached": False,
        "cancelled": False,
        "stage_only": False,
        "task_queue": "test",  # the queue the activity came from (ActivityEnvironment's)
    }

    with pytest.raises(ApplicationError):  # a retry re-attaches, and saves it again
        await run(acts, request)
    again, again_text = run_logs.read_run_log(STACK, "web1", "r1")
    assert again["attached"] and again_text == text
    assert [m["run_id"] for m in run_logs.list_run_logs(STACK, "web1")] == ["r1"]


async def test_only_the_newest_runs_are_kept_on_the_worker_and_the_instance(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_logs, "KEEP_RUNS", 2)
    monkeypatch.setattr(remote, "KEEP_REMOTE_RUNS", 2)
    acts = activities_for(cookbooks)
    for run_id in ("r1", "r2", "r3"):
        await run(acts, request_for(run_id, ["web::count"]))
    assert [m["run_id"] for m in run_logs.list_run_logs(STACK, "web1")] == ["r3", "r2"]
    assert not run_logs.instance_dir(STACK, "web1").exists()  # the store has them, not the disk
    runs = Path(instance.root) / "var/lib/opsflow/runs"
    assert sorted(p.name for p in runs.iterdir()) == ["r2", "r3"]
    assert lines(Path(instance.root) / "count.txt") == ["ran"] * 3


async def test_a_store_that_cannot_keep_the_log_costs_the_log_not_the_run(
    cookbooks: Path,
    request_for: Runner,
    instance: LaunchResult,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv("OPSFLOW_ARTIFACTS", str(tmp_path / "a file" / "store"))
    with caplog.at_level("WARNING", logger="opsflow.runner"):
        await run(activities_for(cookbooks), request_for("r1", ["web::count"]))
    assert lines(Path(instance.root) / "count.txt") == ["ran"]
    assert "could not save the log of run r1" in caplog.text and "a file" in caplog.text


# ---- stage only (update_custom_cookbooks) -----------------------------------------------


async def test_stage_only_stages_the_cookbooks_and_runs_nothing_in_one_command(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = "ab" * 32  # the stack's: the worker does not hash the tree again
    context = RunContext(
        configuration=CONFIGURATION, recipes=["web::count"],
        configuration_manager=ConfigurationManager.SHELL, cookbooks_dir=str(cookbooks),
        cookbooks_digest=digest,
    )  # fmt: skip
    acts = runner_for(context)
    spy = SshSpy(monkeypatch)
    result = await run(acts, request_for("u1", ["web::count"], stage_only=True))
    assert (result.exit_code, result.recipes, len(spy.commands)) == (0, [], 1)
    state = Path(instance.root) / "var/lib/opsflow"
    assert (state / "cookbooks" / digest / "web/count.sh").is_file()
    assert not list((state / "runs").iterdir()) and not list((state / "tmp").iterdir())
    assert not (Path(instance.root) / "count.txt").exists()
    assert f"cookbooks {digest} staged" in result.log_tail
    meta, _ = run_logs.read_run_log(STACK, "web1", "u1")
    assert meta["stage_only"] and meta["exit_code"] == 0

    spy.reset()
    again = await run(acts, request_for("u2", stage_only=True))
    assert "already staged" in again.log_tail and len(spy.commands) == 1
    spy.reset()
    await run(acts, request_for("r1"))  # the staged tree serves the next run: no upload
    assert spy.payloads == [{"run"}]
    assert lines(Path(instance.root) / "count.txt") == ["ran"]


# ---- cancellation -----------------------------------------------------------------------


def running(pid_file: Path) -> bool:
    """Whether the process whose pid `pid_file` holds still runs (a zombie does not)."""
    stat_file = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    try:
        return stat_file.read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def start_and_wait_for(
    env: ActivityEnvironment, acts: runner.RecipeActivities, request: RecipeRunInput,
    marker: Path,
) -> asyncio.Task[RecipeRunResult]:  # fmt: skip
    task = asyncio.create_task(env.run(acts.run_recipes, request))
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.05)
    return task


@pytest.mark.parametrize("recipe", ["web::sleepy", "web::stubborn"])
async def test_a_requested_cancel_stops_the_run_on_the_instance(
    cookbooks: Path,
    request_for: Runner,
    instance: LaunchResult,
    monkeypatch: pytest.MonkeyPatch,
    recipe: str,
) -> None:
    monkeypatch.setattr(remote, "CANCEL_GRACE_SECONDS", 0.5)  # stubborn: then KILL
    root = Path(instance.root)
    env = ActivityEnvironment()
    request = request_for("r1", [recipe, "web::count"])
    task = await start_and_wait_for(env, activities_for(cookbooks), request, root / "sleeper.pid")
    assert running(root / "sleepy.pid") and running(root / "sleeper.pid")

    env.cancel()  # cancel_requested, as when the workflow cancels the activity
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 10
    assert not running(root / "sleepy.pid") and not running(root / "sleeper.pid")
    run_dir = root / "var/lib/opsflow/runs/r1"
    assert (run_dir / "exit").read_text().strip() == "130" and (run_dir / "cancelled").exists()
    assert not (root / "count.txt").exists()  # the next recipe never started
    meta, text = run_logs.read_run_log(STACK, "web1", "r1")
    assert (meta["exit_code"], meta["failed_recipe"], meta["cancelled"]) == (130, recipe, True)
    assert "cancel requested" in text
    assert ("KILL" in text) == (recipe == "web::stubborn")


async def test_a_worker_shutting_down_leaves_the_run_going_for_the_next_attempt(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    root = Path(instance.root)
    acts = activities_for(cookbooks)
    env = ActivityEnvironment()
    task = await start_and_wait_for(env, acts, request_for("r1", ["web::slow"]), root / "slow.txt")
    env.worker_shutdown()
    env.cancel(ActivityCancellationDetails(worker_shutdown=True))
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await run(acts, request_for("r1", ["web::slow"]))  # the restarted worker
    assert result.attached and result.exit_code == 0
    assert lines(root / "slow.txt") == ["started", "finished"]


async def test_any_worker_runs_a_run_the_cookbooks_coming_from_the_store(
    cookbooks: Path, request_for: Runner, instance: LaunchResult, opsflow_home: Path
) -> None:
    blob = tree_cache.publish(shared_store(), cookbooks, cache=False)
    moved = cookbooks.rename(cookbooks.with_name("elsewhere"))  # the fetching worker's disk
    acts = runner_for(
        RunContext(
            configuration=CONFIGURATION,
            recipes=[],
            configuration_manager=ConfigurationManager.SHELL,
            cookbooks_dir=str(cookbooks),  # not on this worker
            cookbooks_blob=blob,
        )
    )
    result = await run(acts, request_for("r-blob", ["web::count"]))
    assert result.exit_code == 0
    assert lines(Path(instance.root) / "count.txt") == ["ran"]
    assert (opsflow_home / "cache" / "trees" / blob / "web" / "count.sh").is_file()
    assert moved.is_dir()


async def test_cookbooks_missing_from_the_store_fail_naming_the_blob(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    blob = "cd" * 32
    acts = runner_for(
        RunContext(
            configuration=CONFIGURATION,
            recipes=[],
            configuration_manager=ConfigurationManager.SHELL,
            cookbooks_dir=str(cookbooks),
            cookbooks_blob=blob,
        )
    )
    with pytest.raises(ApplicationError, match=f"cookbooks: .*blob {blob} is not there") as caught:
        await run(acts, request_for("r-lost", ["web::count"]))
    assert caught.value.non_retryable
    assert not (Path(instance.root) / "count.txt").exists()


async def test_the_commands_custom_json_is_merged_last_into_the_attributes(
    cookbooks: Path, request_for: Runner, instance: LaunchResult
) -> None:
    acts = activities_for(cookbooks)
    extra = {"shop": {"port": 8080}, "opsflow": {"stack": {"name": "renamed"}}, "x": {"y": 1}}
    result = await run(acts, request_for("web1-custom-1", ["web::env"], custom_json=extra))
    assert result.exit_code == 0
    # over the configuration, key by key: the stack's greeting stays, the command's wins
    assert json.loads((Path(instance.root) / "attributes.json").read_text()) == {
        "opsflow": {"stack": {"name": "renamed"}},
        "shop": {"greeting": "hello", "port": 8080},
        "x": {"y": 1},
    }
