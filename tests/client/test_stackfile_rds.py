"""`rds:` entries in a stack file: the password encrypted on load (never in the spec in
clear), plain passwords refused, apps' `data_source` checked, ec2 stacks only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from client.stackfile import load_stack_file
from opsflow import settings
from opsflow.errors import SpecError
from opsflow.secrets import SecureValue, conceal, decrypt, encrypt, new_key
from opsflow.spec import StackSpec

SECRET = "rds-pa55-never-shown"

STACK = """\
name: shop
provider: ec2
region: us-east-1
layers:
  - name: web
rds:
  - name: main
    identifier: shop-db-1
    username: admin
    password: {value: %s, secure: true}
apps:
  - name: store
    layers: [web]
    data_source: main
"""


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())


def _load(tmp_path: Path, text: str) -> StackSpec:
    (tmp_path / "stack.yml").write_text(text)
    return load_stack_file(tmp_path / "stack.yml")


def _refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, text)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert SECRET not in message
    return message


def test_the_rds_password_is_encrypted_on_load_and_never_in_the_spec_in_clear(
    tmp_path: Path,
) -> None:
    spec = _load(tmp_path, STACK % SECRET)
    [entry] = spec.rds
    assert (entry.name, entry.identifier, entry.username) == ("main", "shop-db-1", "admin")
    assert entry.database_name is None
    assert isinstance(entry.password, SecureValue)
    assert decrypt(settings.secret_key(), entry.password) == SECRET
    assert spec.apps[0].data_source == "main"
    assert SECRET not in spec.model_dump_json()
    assert SECRET not in repr(spec)
    dumped = spec.model_dump(mode="json")
    assert SECRET not in json.dumps(conceal(dumped))
    assert conceal(dumped)["rds"][0]["password"] == "******"
    # what travels (workflow history) validates back into the same spec
    assert StackSpec.model_validate_json(spec.model_dump_json()) == spec


def test_database_name_overrides_are_kept(tmp_path: Path) -> None:
    text = (STACK % SECRET).replace("username: admin", "username: admin\n    database_name: shop")
    assert _load(tmp_path, text).rds[0].database_name == "shop"


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        (SECRET, "rds[0].password: must be written {value: STRING, secure: true}, not a plain"),
        (f"{{value: {SECRET}}}", "rds[0].password: must be written {value: STRING, secure: true}"),
        (
            f"{{value: {SECRET}, secure: false}}",
            "rds[0].password: must be secure: must be written {value: STRING, secure: true}",
        ),
        (f"{{value: {SECRET}, secure: true, note: x}}", "rds[0].password: must be written"),
        (f"{{value: [{SECRET}], secure: true}}", "rds[0].password.value: must be a non-empty"),
    ],
)
def test_a_password_not_given_as_a_secure_value_is_refused_without_quoting_it(
    tmp_path: Path, password: str, expected: str
) -> None:
    text = (STACK % SECRET).replace(f"{{value: {SECRET}, secure: true}}", password)
    assert expected in _refused(tmp_path, text)


@pytest.mark.parametrize("password", [SECRET, {"value": SECRET, "secure": True}, [SECRET]])
def test_the_spec_itself_refuses_a_plain_password_without_quoting_it(password: object) -> None:
    entry = {"name": "main", "identifier": "shop-db-1", "username": "admin", "password": password}
    raw = {"name": "shop", "provider": "ec2", "region": "us-east-1", "rds": [entry]}
    with pytest.raises(ValidationError) as caught:
        StackSpec.model_validate(raw)
    assert "must be a secure value, written {value: ..., secure: true}" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.errors())


def test_an_unknown_data_source_is_refused_naming_the_field(tmp_path: Path) -> None:
    text = (STACK % SECRET).replace("data_source: main", "data_source: other")
    message = _refused(tmp_path, text)
    assert "apps[0].data_source: 'other' is not an `rds` entry of this stack (rds: main)" in message


def test_rds_is_refused_on_a_local_stack(tmp_path: Path) -> None:
    text = (STACK % SECRET).replace("provider: ec2\nregion: us-east-1\n", "")
    assert "rds: only for provider ec2 (this stack is local)" in _refused(tmp_path, text)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("shop-db-1", "1-starts-with-a-digit"), "identifier: '1-starts-with-a-digit' is not"),
        (("shop-db-1", "has_underscore"), "is not an RDS DB instance identifier"),
        (("shop-db-1", "x" * 64), "is not an RDS DB instance identifier"),
        (("username: admin", "username: ''"), "rds[0].username"),
        (("name: main", "name: Main"), "'Main' is not a valid rds name"),
        (("    username: admin", "    username: admin\n    port: 5432"), "rds[0].port: unknown"),
    ],
)
def test_bad_rds_entries_are_refused(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = (STACK % SECRET).replace(*change)
    assert expected in _refused(tmp_path, text)


def test_rds_names_are_unique() -> None:
    password = encrypt(new_key(), SECRET)
    entry = {"name": "main", "identifier": "a", "username": "u", "password": password}
    raw = {"name": "shop", "provider": "ec2", "region": "us-east-1", "rds": [entry, entry]}
    with pytest.raises(ValidationError, match="rds: name 'main' is used twice"):
        StackSpec.model_validate(raw)
