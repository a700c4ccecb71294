"""docker-compose.yml and the worker Dockerfile, checked by reading them (no Docker here)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.common import SearchAttributeIndexedValueType

from workflows.common import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    result: dict[str, Any] = compose["services"]
    return result


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service["depends_on"].items()}


def _command_words(service: dict[str, Any]) -> list[str]:
    parts = [*service.get("entrypoint", []), *service.get("command", [])]
    return shlex.split(" ".join(parts).replace("\\\n", " "))


def test_every_part_is_a_service(services: dict[str, Any]) -> None:
    assert {
        "postgresql",
        "temporal",
        "temporal-search-attributes",
        "temporal-ui",
        "artifacts",
        "artifacts-bucket",
        "worker",
    } <= set(services)


def test_temporal_keeps_its_state_in_postgresql(services: dict[str, Any]) -> None:
    temporal = services["temporal"]
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert "7233:7233" in temporal["ports"]
    assert _depends_on(temporal) == {"postgresql": "service_healthy"}
    assert services["postgresql"]["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgresql"]["volumes"])


def test_ui_and_worker_talk_to_temporal(services: dict[str, Any]) -> None:
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "8233:8080" in services["temporal-ui"]["ports"]
    worker = services["worker"]
    assert worker["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert worker["environment"]["OPSFLOW_HOME"] == "/var/lib/opsflow"


def test_several_workers_share_one_store_and_one_key(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 2
    # Replicas sharing one home would share one worker identity and cache.
    assert "volumes" not in worker
    env = worker["environment"]
    store = env["OPSFLOW_ARTIFACTS"]
    assert store.startswith("s3://")
    bucket = store.removeprefix("s3://").split("/")[0]
    # The endpoint is the store service, on the port it listens on.
    host, _, port = env["AWS_ENDPOINT_URL"].removeprefix("http://").partition(":")
    assert host == "artifacts"
    assert any(p.startswith(f"{port}:") for p in services["artifacts"]["ports"])
    # The same credentials the store was given, and a bucket that the one-shot creates.
    minio = services["artifacts"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    words = _command_words(services["artifacts-bucket"])
    assert f"store/{bucket}" in words
    assert _depends_on(worker)["artifacts-bucket"] == "service_completed_successfully"
    # Every worker must be given the one key: compose refuses to start without it.
    assert env["OPSFLOW_SECRET_KEY"].startswith("${OPSFLOW_SECRET_KEY:?")


def test_worker_starts_after_temporal_and_its_search_attributes(services: dict[str, Any]) -> None:
    assert _depends_on(services["worker"]) == {
        "temporal": "service_healthy",
        "temporal-search-attributes": "service_completed_successfully",
        "artifacts-bucket": "service_completed_successfully",
    }
    assert _depends_on(services["temporal-search-attributes"]) == {"temporal": "service_healthy"}
    assert services["temporal"]["healthcheck"]["test"]


def test_every_search_attribute_is_registered_as_keyword(services: dict[str, Any]) -> None:
    words = _command_words(services["temporal-search-attributes"])
    create = words.index("create")
    registered = [words[i + 1] for i in range(create, len(words) - 1) if words[i] == "--name"]
    assert registered == [key.name for key in SEARCH_ATTRIBUTES]
    assert words[words.index("--type", create) + 1] == "Keyword"
    # One --type for all names: a non-keyword attribute needs its own create command.
    assert {key.indexed_value_type for key in SEARCH_ATTRIBUTES} == {
        SearchAttributeIndexedValueType.KEYWORD
    }


def test_dockerfile_builds_the_worker() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE)
    assert "openssh-client" in text
    assert "pip install" in text
    assert 'CMD ["python", "-m", "worker"]' in text


def test_dockerfile_copies_every_package_the_distribution_installs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", text, re.MULTILINE))
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tops = {name.split(".")[0] for name in setuptools["packages"]}
    modules = {f"{name}.py" for name in setuptools.get("py-modules", [])}
    assert tops | modules <= copied
