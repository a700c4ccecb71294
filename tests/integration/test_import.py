"""An imported OpsWorks stack applies on the local provider and its recipes see the custom
JSON the template held. Real dev server, worker, sshd and CLI.

Chef cannot be installed here (Debian 12 has no chef or cinc): the imported file names
chef; the test runs the same recipe names as shell recipes (the one line it changes), so
what is checked is the import, the apply and the attributes every manager gets.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from client.api import OpsflowClient
from tests.integration.conftest import opsflow_cli

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[1] / "client" / "importers" / "shop.template.yaml"
# Each recipe keeps what it saw, named after itself.
SAVE = 'cp "$OPSFLOW_ATTRIBUTES" "$OPSFLOW_ROOT/seen-{name}.json"\n'


async def test_an_imported_template_applies_on_local_and_its_recipes_see_its_custom_json(
    opsflow: OpsflowClient,
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    opsflow_home: Path,
) -> None:
    address = dev_env.client.service_client.config.target_host
    cookbooks = tmp_path / "cookbooks"
    for recipe in ("shop::setup", "shop::configure", "cache::setup"):
        cookbook, _, name = recipe.partition("::")
        (cookbooks / cookbook).mkdir(parents=True, exist_ok=True)
        (cookbooks / cookbook / f"{name}.sh").write_text(SAVE.format(name=f"{cookbook}-{name}"))
    (tmp_path / "token").write_text("imp0rted-s3cret")
    stack_file = tmp_path / "stack.yml"
    imported = await opsflow_cli(
        [
            "import", "cloudformation", str(TEMPLATE), "--provider", "local",
            "--stack-name", "imported", "--source", f"cookbooks={cookbooks}",
            "--parameter", "ApiToken=@" + str(tmp_path / "token"), "-o", str(stack_file),
        ],
        address,
        task_queue,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    document = yaml.safe_load(stack_file.read_text())
    assert document["configuration_manager"] == "chef"
    document["configuration_manager"] = "shell"  # no chef here (see the docstring)
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))

    applied = await opsflow_cli(["stack", "apply", str(stack_file), "--wait"], address, task_queue)
    try:
        assert applied.returncode == 0, applied.stderr
        root = opsflow_home / "instances" / "imported-staging" / "web1" / "root"
        # web1 is in both layers: both layers' setup recipes ran there, in order
        setup = json.loads((root / "seen-shop-setup.json").read_text())
        assert (root / "seen-cache-setup.json").exists()
        # the template's custom JSON (stack, with its !If and !Ref resolved; layer on top)
        assert setup["shop"] == {"greeting": "hi", "env": "staging", "role": "web"}
        assert setup["opsworks"]["instance"]["layers"] == ["web", "cache"]
        # the configure round that follows an instance coming online (after a quiet period)
        seen = root / "seen-shop-configure.json"
        for _ in range(300):
            if seen.exists():
                break
            await asyncio.sleep(0.1)
        configured = json.loads(seen.read_text())
        assert configured["shop"]["greeting"] == "hi"
        assert configured["opsworks"]["activity"] == "configure"
        # the secret given with --parameter reaches the recipes (revealed on the worker only)
        assert setup["deploy"]["shop"]["environment_variables"]["API_TOKEN"] == "imp0rted-s3cret"
        stack = await opsflow_cli(["stack", "describe", "imported-staging"], address, task_queue)
        assert stack.returncode == 0 and "imp0rted-s3cret" not in stack.stdout
    finally:
        deleted = await opsflow_cli(
            ["stack", "delete", "imported-staging", "--wait"], address, task_queue
        )
        assert deleted.returncode == 0, deleted.stderr
