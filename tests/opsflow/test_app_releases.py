"""An app's release and database as the stack hands them out."""

from __future__ import annotations

import pytest

from opsflow.app_releases import (
    app_of,
    command_release,
    current_releases,
    database_for,
    deploy_release,
)
from opsflow.errors import NotFound
from opsflow.messages import AppAction, AppRelease, RdsInfo, ResolvedCookbooks
from opsflow.secrets import SecureValue, encrypt, new_key
from opsflow.spec import StackSpec

RDS = {
    "main": RdsInfo(
        identifier="shop-db-1", address="db.example", port=5432, engine="postgres",
        database_name="shop",
    )
}  # fmt: skip


def spec(database_name: str | None = None) -> StackSpec:
    rds: dict[str, object] = {
        "name": "main",
        "identifier": "shop-db-1",
        "username": "admin",
        "password": encrypt(new_key(), "s3cret").model_dump(),
    }
    if database_name is not None:
        rds["database_name"] = database_name
    return StackSpec.model_validate(
        {
            "name": "shop",
            "provider": "ec2",
            "region": "us-east-1",
            "ec2": {"ami": "ami-0abc1234def567890", "instance_type": "t3.micro"},
            "layers": [
                {"name": "web", "instances": [{"hostname": "w1"}]},
                {"name": "api", "instances": [{"hostname": "a1"}]},
            ],
            "rds": [rds],
            "apps": [
                {"name": "hello", "layers": ["web"], "data_source": "main"},
                {"name": "plain", "layers": ["web", "api"], "environment": {"A": "1"}},
            ],
        }
    )


def test_an_unknown_app_is_not_found_naming_the_apps_there_are() -> None:
    with pytest.raises(NotFound, match=r"no app 'nope' \(apps: hello, plain\)"):
        app_of(spec(), "nope")


def test_the_database_is_the_rds_entry_as_aws_described_it_password_still_encrypted() -> None:
    the_spec = spec()
    database = database_for(the_spec, RDS, app_of(the_spec, "hello"))
    assert database is not None
    assert (database.host, database.port, database.engine) == ("db.example", 5432, "postgres")
    assert (database.username, database.database) == ("admin", "shop")
    assert isinstance(database.password, SecureValue)
    # The file's database_name wins over the instance's DBName.
    named = spec(database_name="other")
    assert database_for(named, RDS, app_of(named, "hello")).database == "other"  # type: ignore[union-attr]


def test_no_database_without_a_data_source_or_before_aws_described_it() -> None:
    the_spec = spec()
    assert database_for(the_spec, RDS, app_of(the_spec, "plain")) is None
    assert database_for(the_spec, {}, app_of(the_spec, "hello")) is None


def test_a_new_instance_gets_the_current_release_of_each_app_on_its_layer() -> None:
    the_spec = spec()
    apps = {
        "plain": AppRelease(app="plain", action=AppAction.DEPLOY, release="r2"),
        "hello": AppRelease(app="hello", action=AppAction.DEPLOY, release="r1"),
        "removed": AppRelease(app="removed", action=AppAction.DEPLOY, release="r0"),
    }
    on_web = current_releases(the_spec, apps, RDS, ["web"])
    assert [(r.app, r.release) for r in on_web] == [("hello", "r1"), ("plain", "r2")]
    assert on_web[0].database is not None and on_web[1].database is None
    assert [r.app for r in current_releases(the_spec, apps, RDS, ["api"])] == ["plain"]


def test_a_deploy_release_is_named_after_its_revision_or_else_its_code() -> None:
    the_spec = spec()
    app = app_of(the_spec, "plain")
    code = ResolvedCookbooks(directory="/store/x", digest="ab" * 32, description="app")
    by_revision = deploy_release(the_spec, RDS, app, 7, "v1.2", code)
    by_code = deploy_release(the_spec, RDS, app, 8, None, code)
    assert by_revision.release != by_code.release
    assert "v1.2" in (by_revision.release or "") and "abab" in (by_code.release or "")
    assert (by_code.source_dir, by_code.source_digest) == ("/store/x", "ab" * 32)
    assert by_code.environment == {"A": "1"}


def test_other_app_commands_carry_the_release_asked_for_and_no_code() -> None:
    the_spec = spec()
    release = command_release(the_spec, RDS, app_of(the_spec, "hello"), AppAction.ROLLBACK, "r1")
    assert (release.action, release.release, release.source_dir) == (
        AppAction.ROLLBACK, "r1", None,
    )  # fmt: skip
    assert release.database is not None
