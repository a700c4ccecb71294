"""An app's database (its `data_source`, a registered RDS instance) in a deploy on a real
local instance: `deploy.{app}.database` in the attributes with the password revealed
there (0600), and `******` wherever a recipe prints it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.recipes import runner
from opsflow import settings
from opsflow.messages import AppAction, AppDatabase, AppRelease, LaunchResult, RunContext
from opsflow.releases import release_name
from opsflow.secrets import encrypt
from opsflow.spec import ConfigurationManager
from runtime import run_logs
from tests.activities.conftest import STACK, Runner, run, runner_for, write_tree

pytestmark = pytest.mark.integration

APP = "shop-app"
PASSWORD = "db-pa55 'w0rd' $x"

RECIPES = {
    "app/deploy.sh": 'cp "$OPSFLOW_ATTRIBUTES" deploy-attributes.json\n',
    "app/echo.sh": """
python3 -c 'import json, os
db = json.load(open(os.environ["OPSFLOW_ATTRIBUTES"]))["deploy"]["shop-app"]["database"]
print("connecting to", db["host"], "as", db["username"], "with", db["password"])'
""",
    "app/fail.sh": """
python3 -c 'import json, os, sys
db = json.load(open(os.environ["OPSFLOW_ATTRIBUTES"]))["deploy"]["shop-app"]["database"]
print("password", db["password"], "rejected", file=sys.stderr)'
exit 3
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


def release(number: int) -> AppRelease:
    database = AppDatabase(
        engine="postgres",
        host="shop-db-1.abc.us-east-1.rds.amazonaws.com",
        port=5432,
        database="shop",
        username="admin",
        password=encrypt(settings.secret_key(), PASSWORD),
    )
    assert PASSWORD not in database.model_dump_json()
    return AppRelease(
        app=APP,
        action=AppAction.DEPLOY,
        release=release_name(number, f"rev{number}"),
        database=database,
    )


async def test_the_database_is_in_the_attributes_and_its_password_only_there(
    acts: runner.RecipeActivities, request_for: Runner, instance: LaunchResult
) -> None:
    request = request_for("deploy-1", ["app::deploy", "app::echo"], app=release(1))
    assert PASSWORD not in request.model_dump_json()  # what workflow history keeps
    result = await run(acts, request)

    run_dir = Path(instance.root) / "var/lib/opsflow/runs/deploy-1"
    attributes = run_dir / "attributes.json"
    assert stat.S_IMODE(attributes.stat().st_mode) == 0o600
    assert json.loads(attributes.read_text())["deploy"][APP]["database"] == {
        "type": "rds",
        "engine": "postgres",
        "host": "shop-db-1.abc.us-east-1.rds.amazonaws.com",
        "port": 5432,
        "database": "shop",
        "username": "admin",
        "password": PASSWORD,
    }
    expected = "connecting to shop-db-1.abc.us-east-1.rds.amazonaws.com as admin with ******"
    assert expected in result.log_tail and PASSWORD not in result.log_tail
    meta, text = run_logs.read_run_log(STACK, "web1", "deploy-1")
    assert expected in text and PASSWORD not in text
    assert PASSWORD not in json.dumps(meta)


async def test_a_failure_printing_the_password_does_not_show_it(
    acts: runner.RecipeActivities, request_for: Runner, instance: LaunchResult
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await run(acts, request_for("deploy-2", ["app::fail"], app=release(2)))
    error = raised.value
    assert "password ****** rejected" in error.message and PASSWORD not in error.message
    assert all(PASSWORD not in str(detail) for detail in error.details)
    _, text = run_logs.read_run_log(STACK, "web1", "deploy-2")
    assert "password ****** rejected" in text and PASSWORD not in text
