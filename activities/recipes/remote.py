"""The remote commands of a run and the detached run script, composed from scripts/*.sh
with their values (activities.remote_script quotes them):

    start   helpers, stage, claim, wait, report: stage if needed, claim, start, wait
    stage   helpers, stage, stage-end: update_custom_cookbooks' staging alone
    wait    helpers, wait, report: wait on a run already started
    stop    helpers, stop, report: stop a run (see scripts/stop.sh)
    run.sh  the manager's part, the app's release step (with an app), the stack users'
            step (setup, configure: users.sh), run.sh
"""

from __future__ import annotations

from activities import remote_script
from activities.recipes import managers, releases
from activities.recipes.layout import Layout
from activities.recipes.releases import App
from activities.remote_script import Value
from opsflow.messages import RecipeRunInput
from opsflow.recipes import recipe_file
from opsflow.spec import ConfigurationManager

# One remote command waits at most this long, then the next one takes over: bounds how
# long an abandoned activity's thread lingers.
WAIT_CHUNK_SECONDS = 30
POLL_SECONDS = 0.05
# Most recipe runs are short: the first half second is polled finely, for latency.
FAST_POLL_SECONDS = 0.01
FAST_POLLS = 50
# A cancelled run's processes get TERM, then KILL after this long.
CANCEL_GRACE_SECONDS = 5.0
CANCELLED_EXIT_CODE = 130
# Finished run directories kept on an instance (the worker keeps their logs too).
KEEP_REMOTE_RUNS = 30
# The run directory's file naming the users to converge (opsflow.users.users_document).
USERS_FILE = "users"

_PACKAGE = "activities.recipes"


def _files(names: list[str]) -> list[str]:
    return [f"scripts/{name}" for name in names]


def _compose(names: list[str], values: dict[str, Value]) -> str:
    return remote_script.compose(_PACKAGE, _files(names), values)


def _stage_values(layout: Layout) -> dict[str, Value]:
    return {
        "RUNS": layout.runs,
        "TMP": layout.tmp,
        "COOKBOOKS": layout.cookbooks,
        "APP_CODE": layout.app_code or "",
    }


def _wait_values(layout: Layout) -> dict[str, Value]:
    slow = int((WAIT_CHUNK_SECONDS - FAST_POLLS * FAST_POLL_SECONDS) / POLL_SECONDS)
    return {
        "RUN": layout.run,
        "NAP_FIFO": layout.nap_fifo,
        "WAIT_POLLS": FAST_POLLS + slow,
        "FAST_POLLS": FAST_POLLS,
        "FAST_POLL_SECONDS": str(FAST_POLL_SECONDS),
        "POLL_SECONDS": str(POLL_SECONDS),
    }


def start_command(layout: Layout, nonce: str) -> str:
    """Stage (if the payload carries what is missing), claim the run or find an earlier
    attempt's, start it if claimed afresh, wait one chunk, report."""
    values = _stage_values(layout) | _wait_values(layout)
    values |= {"NONCE": nonce, "KEEP_RUNS": KEEP_REMOTE_RUNS}
    return _compose(["helpers.sh", "stage.sh", "claim.sh", "wait.sh", "report.sh"], values)


def stage_command(layout: Layout) -> str:
    """Stage the cookbooks (and nothing else)."""
    return _compose(["helpers.sh", "stage.sh", "stage-end.sh"], _stage_values(layout))


def wait_command(layout: Layout) -> str:
    """Wait on a run already started (the start command's wait chunk ran out)."""
    return _compose(["helpers.sh", "wait.sh", "report.sh"], _wait_values(layout))


def stop_command(layout: Layout) -> str:
    """Stop a run (TERM, then KILL its process group), then report."""
    values: dict[str, Value] = {
        "RUNS": layout.runs,
        "RUN": layout.run,
        "CANCELLED_EXIT": CANCELLED_EXIT_CODE,
        "GRACE_POLLS": max(int(CANCEL_GRACE_SECONDS / POLL_SECONDS), 1),
        "GRACE_SECONDS": f"{CANCEL_GRACE_SECONDS:g}",
        "POLL_SECONDS": str(POLL_SECONDS),
    }
    return _compose(["helpers.sh", "stop.sh", "report.sh"], values)


def run_script(
    layout: Layout,
    request: RecipeRunInput,
    recipes: list[str],
    manager: ConfigurationManager,
    app: App | None = None,
    nonce: str = "",
    *,
    users: bool = False,
) -> str:
    """The detached run.sh: the recipes in order with the manager's tool, the first
    failure ends it; with an app, its release step around them; with `users`, the stack
    users converged first (scripts/users.sh, from the run directory's `users` file)."""
    attributes = layout.in_run("attributes.json")
    env = {
        "OPSFLOW_ATTRIBUTES": attributes,
        "OPSFLOW_EVENT": request.event,
        "OPSFLOW_INSTANCE": request.hostname,
        "OPSFLOW_ROOT": layout.root,
        "OPSFLOW_RUN_ID": request.run_id,
        "OPSFLOW_STACK": request.stack,
    }
    if manager == ConfigurationManager.PUPPET:
        env |= {
            "FACTER_opsflow_stack": request.stack,
            "FACTER_opsflow_instance": request.hostname,
            "FACTER_opsflow_event": request.event,
            "FACTER_opsflow_root": layout.root,
            "FACTER_opsflow_attributes": attributes,
        }
    # The app's variables first: opsflow's own win a clash.
    app_env = app.environment if app is not None else {}
    # Recipe names (checked against opsflow.names.RECIPE) and so their files hold no
    # blanks: run.sh splits the two lists on blanks.
    values: dict[str, Value] = {
        "OPSFLOW_RUN_DIR": layout.run,
        "OPSFLOW_COOKBOOKS": layout.cookbooks,
        "OPSFLOW_RECIPES": " ".join(recipes),
        "OPSFLOW_RECIPE_FILES": " ".join(recipe_file(manager, recipe) for recipe in recipes),
        "OPSFLOW_CANCELLED_EXIT": CANCELLED_EXIT_CODE,
        "OPSFLOW_APP_ACTION": app.action.value if app is not None else "",
        "OPSFLOW_USERS": layout.in_run(USERS_FILE) if users else "",
        **managers.script_values(manager, layout),
    }
    names = [managers.SCRIPTS[manager]]
    if users:
        values["OPSFLOW_USERS_STATE"] = layout.users_state
        names.append("users.sh")
    if app is not None:
        values |= releases.script_values(app, request, layout, nonce)
        names.append("app.sh")
    names.append("run.sh")
    return (
        f"#!/bin/sh\n# opsflow run {request.run_id} ({manager.value}, generated): recipes in"
        " order, the first\n# failure ends it.\n"
        + remote_script.compose(_PACKAGE, _files(names), values, exported=app_env | env)
    )
