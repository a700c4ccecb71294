"""The runner reveals the secure values of the whole stack configuration (an app's SSL key
and RDS password in `deploy`, the data bags) on the worker, writes them only into the
run's root-only files and redacts them from every log it returns or keeps."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.recipes.runner import _revealed
from opsflow import settings
from opsflow.messages import LaunchResult, RunContext
from opsflow.secrets import encrypt
from opsflow.spec import ConfigurationManager
from runtime import run_logs
from tests.activities.conftest import STACK, Runner, run, runner_for, write_tree

pytestmark = pytest.mark.integration

SSL_KEY = "-----BEGIN PRIVATE KEY-----fixture-ssl-key-----END PRIVATE KEY-----"
PASSWORD = "orders-db-pa55"


def context(cookbooks: Path, recipes: list[str]) -> RunContext:
    key = settings.secret_key()
    return RunContext(
        configuration={
            "deploy": {
                "shop": {
                    "ssl_certificate_key": encrypt(key, SSL_KEY).model_dump(mode="json"),
                    "database": {"password": encrypt(key, PASSWORD).model_dump(mode="json")},
                }
            }
        },
        recipes=recipes,
        configuration_manager=ConfigurationManager.SHELL,
        cookbooks_dir=str(cookbooks),
        data_bags={
            "aws_opsworks_rds_db_instance": {
                "orders": {"db_password": encrypt(key, PASSWORD).model_dump(mode="json")}
            }
        },
    )


def test_revealing_a_context_without_secure_values_needs_no_key(opsflow_home: Path) -> None:
    plain = RunContext(
        configuration={"shop": {"secure": True}},
        recipes=[],
        configuration_manager=ConfigurationManager.SHELL,
        cookbooks_dir=None,
    )
    assert _revealed(plain) == (plain, [])
    assert not (opsflow_home / "secret.key").exists()


def test_the_data_bags_are_revealed_with_the_attributes(opsflow_home: Path) -> None:
    revealed, secrets = _revealed(context(opsflow_home, []))
    assert revealed.data_bags is not None
    assert revealed.data_bags["aws_opsworks_rds_db_instance"]["orders"]["db_password"] == PASSWORD
    assert revealed.configuration["deploy"]["shop"]["ssl_certificate_key"] == SSL_KEY
    assert sorted(secrets) == sorted([SSL_KEY, PASSWORD, PASSWORD])


async def test_secure_values_in_the_configuration_reach_the_instance_but_never_the_logs(
    tmp_path: Path, request_for: Runner, instance: LaunchResult
) -> None:
    cookbooks = write_tree(
        tmp_path / "cookbooks",
        {
            "web/leak.sh": 'echo "key $(cat "$OPSFLOW_ATTRIBUTES")"\n',
            "web/fail.sh": 'echo "rejected $(cat "$OPSFLOW_ATTRIBUTES")" >&2\nexit 1\n',
        },
    )
    acts = runner_for(context(cookbooks, ["web::leak"]))
    ok = await run(acts, request_for("secrets-1"))
    assert "key " in ok.log_tail
    assert SSL_KEY not in ok.log_tail and PASSWORD not in ok.log_tail
    assert "******" in ok.log_tail
    _, text = run_logs.read_run_log(STACK, "web1", "secrets-1")
    assert SSL_KEY not in text and PASSWORD not in text

    with pytest.raises(ApplicationError) as raised:
        await run(acts, request_for("secrets-2", ["web::fail"]))
    assert SSL_KEY not in raised.value.message and PASSWORD not in raised.value.message

    attributes = Path(instance.root) / "var/lib/opsflow/runs/secrets-1/attributes.json"
    document = json.loads(attributes.read_text())
    assert document["deploy"]["shop"]["ssl_certificate_key"] == SSL_KEY
    assert document["deploy"]["shop"]["database"]["password"] == PASSWORD
    assert stat.S_IMODE(attributes.stat().st_mode) == 0o600
