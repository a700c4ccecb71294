"""Stack files on disk: accepted as written, or refused naming file, field and problem."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.stackfile import load_stack_file
from opsflow import settings
from opsflow.errors import SpecError
from opsflow.secrets import SecureValue, conceal, decrypt, new_key
from runtime.sealing import Sealer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop" / "stack.yml"

GOOD = """\
name: shop
cookbooks: {source: ./cookbooks}
layers:
  - name: web
    recipes: {setup: [web::setup]}
    instances: [{hostname: web1}]
"""


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    (tmp_path / "cookbooks" / "web").mkdir(parents=True)
    (tmp_path / "cookbooks" / "web" / "setup.sh").write_text("true\n")
    return tmp_path


def test_the_example_stack_is_accepted_as_written() -> None:
    spec = load_stack_file(EXAMPLE)
    assert spec.name == "shop"
    assert [layer.name for layer in spec.layers] == ["lb", "web"]
    assert [i.hostname for i in spec.layers[1].instances] == ["web1", "web2", "web3"]
    assert spec.cookbooks is not None
    assert spec.cookbooks.source == str(EXAMPLE.parent / "cookbooks")
    assert [app.name for app in spec.apps] == ["store"]
    store = spec.apps[0].source
    assert store is not None and store.source == str(EXAMPLE.parent / "app")


def test_cookbooks_resolve_relative_to_the_file(stack_dir: Path) -> None:
    (stack_dir / "stack.yml").write_text(GOOD)
    spec = load_stack_file(stack_dir / "stack.yml")
    assert spec.cookbooks is not None and spec.cookbooks.source == str(stack_dir / "cookbooks")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "colour: blue\n", "stack.yml: colour: unknown key"),
        (
            GOOD.replace("name: shop", "name: Shop"),
            "stack.yml: name: 'Shop' is not a valid stack name",
        ),
        (
            GOOD.replace("web::setup", "web::missing"),
            "stack.yml: layers[0].recipes.setup[0]: recipe 'web::missing' does not exist",
        ),
        (
            GOOD.replace("hostname: web1", "hostname: web1, size: big"),
            "stack.yml: layers[0].instances[0].size: unknown key",
        ),
        (GOOD + "  - name: web\n", "stack.yml: layers: layer name 'web' is used twice"),
        (
            GOOD + "instances: [{hostname: both1, layers: [web, cache]}]\n",
            "stack.yml: instances[0].layers: unknown layer 'cache' (layers: web)",
        ),
        (
            GOOD + "instances: [{hostname: both1, layers: [web, web]}]\n",
            "stack.yml: instances[0].layers: layer 'web' is named twice",
        ),
        (
            GOOD + "instances: [{hostname: web1, layers: [web]}]\n",
            "stack.yml: instances[0].hostname: 'web1' is also nested under layer 'web'",
        ),
        (
            GOOD.replace("./cookbooks", "./nowhere"),
            "stack.yml: cookbooks.source: './nowhere' is not a directory",
        ),
        ("name: [unclosed\n", "stack.yml: line 2, column 1: not valid YAML"),
        ("- just a list\n", "stack.yml: the file must be a YAML mapping"),
        (GOOD.replace("name: shop\n", ""), "stack.yml: name: required key is missing"),
    ],
)
def test_bad_files_name_file_field_and_problem(stack_dir: Path, text: str, expected: str) -> None:
    (stack_dir / "stack.yml").write_text(text)
    with pytest.raises(SpecError) as caught:
        load_stack_file(stack_dir / "stack.yml")
    assert expected in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file does not exist"):
        load_stack_file(tmp_path / "nope.yml")


# ---- apps ---------------------------------------------------------------------------

SECRET = "pa55-w0rd-never-shown"

APPS = """\
apps:
  - name: store
    layers: [web]
    source: {source: ./app}
    environment:
      PLAIN: hello
      WRAPPED: {value: wrapped}
      NOT_SECURE: {value: visible, secure: false}
      DB_PASSWORD: {value: %s, secure: true}
"""


@pytest.fixture
def app_dir(stack_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
    (stack_dir / "app").mkdir()
    (stack_dir / "app" / "index.html").write_text("hi\n")
    return stack_dir


def _app_file(directory: Path, apps: str = APPS % SECRET) -> Path:
    (directory / "stack.yml").write_text(GOOD + apps)
    return directory / "stack.yml"


def test_app_environment_secure_values_are_encrypted_on_load(app_dir: Path) -> None:
    spec = load_stack_file(_app_file(app_dir))
    environment = spec.apps[0].environment
    assert environment["PLAIN"] == "hello"
    assert environment["WRAPPED"] == "wrapped"
    assert environment["NOT_SECURE"] == "visible"
    secure = environment["DB_PASSWORD"]
    assert isinstance(secure, SecureValue)
    assert decrypt(settings.secret_key(), secure) == SECRET
    assert SECRET not in spec.model_dump_json()
    assert SECRET not in repr(spec)
    assert SECRET not in json.dumps(conceal(spec.model_dump(mode="json")))


def test_app_source_resolves_relative_to_the_file(app_dir: Path) -> None:
    spec = load_stack_file(_app_file(app_dir))
    source = spec.apps[0].source
    assert source is not None and source.source == str(app_dir / "app")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{value: %s, secure: true, note: db}", "apps[0].environment.DB_PASSWORD: unknown key"),
        ("{secret: %s, secure: true}", "apps[0].environment.DB_PASSWORD: unknown key"),
        ("{value: %s, secure: yes-please}", "apps[0].environment.DB_PASSWORD.secure: must be"),
        ("{value: %s, secure: 1}", "apps[0].environment.DB_PASSWORD.secure: must be"),
        ("[%s]", "apps[0].environment.DB_PASSWORD: must be a string"),
        ("{value: [%s], secure: true}", "apps[0].environment.DB_PASSWORD.value: must be a string"),
    ],
)
def test_bad_environment_entries_are_refused_without_quoting_the_value(
    app_dir: Path, entry: str, expected: str
) -> None:
    apps = APPS.replace("{value: %s, secure: true}", entry) % SECRET
    with pytest.raises(SpecError) as caught:
        load_stack_file(_app_file(app_dir, apps))
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)
    assert caught.value.exit_code == 2


def test_non_string_environment_values_are_refused(app_dir: Path) -> None:
    apps = APPS.replace("PLAIN: hello", "PORT: 8080") % SECRET
    with pytest.raises(SpecError, match=r"apps\[0\]\.environment\.PORT: must be a string"):
        load_stack_file(_app_file(app_dir, apps))


def test_an_environment_that_is_not_a_mapping_is_refused_without_quoting_it(
    app_dir: Path,
) -> None:
    apps = f"apps:\n  - name: store\n    layers: [web]\n    environment: [{SECRET}]\n"
    with pytest.raises(SpecError) as caught:
        load_stack_file(_app_file(app_dir, apps))
    assert "apps[0].environment: must be a mapping" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_other_schema_errors_in_an_app_with_secrets_do_not_quote_them(app_dir: Path) -> None:
    for broken in (
        (APPS % SECRET).replace("layers: [web]", "layers: [nope]"),
        (APPS % SECRET).replace("DB_PASSWORD", "DB-PASSWORD"),
        (APPS % SECRET) + "    colour: blue\n",
    ):
        with pytest.raises(SpecError) as caught:
            load_stack_file(_app_file(app_dir, broken))
        assert SECRET not in str(caught.value)
        assert "apps" in str(caught.value)


def test_a_missing_app_source_directory_is_refused(app_dir: Path) -> None:
    apps = (APPS % SECRET).replace("./app", "./nowhere")
    with pytest.raises(SpecError) as caught:
        load_stack_file(_app_file(app_dir, apps))
    assert "stack.yml: apps[0].source.source: './nowhere' is not a directory" in str(caught.value)


# ---- path fields the file system refuses -----------------------------------------------

REGISTERED = """\
name: shop
provider: registered
layers:
  - name: web
    instances:
      - hostname: web1
        ssh: {host: 10.0.0.5, key_file: %s}
"""

UNUSABLE_NAMES = {
    "a NUL byte": ('"./in\\0side"', "must not contain a NUL byte"),
    "a name too long": ("x" * 5000, "cannot be used as a path: File name too long"),
    "a path too long": ("/".join(["x" * 200] * 30), "cannot be used as a path: File name too long"),
}


@pytest.mark.parametrize("value", UNUSABLE_NAMES.values(), ids=UNUSABLE_NAMES.keys())
@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("./cookbooks", "%s"), "cookbooks.source"),
        (GOOD + APPS.replace("./app", "%s"), "apps[0].source.source"),
        (REGISTERED, "layers[0].instances[0].ssh.key_file"),
    ],
    ids=["cookbooks", "app source", "key file"],
)
def test_a_path_field_the_file_system_refuses_is_refused_naming_the_field(
    app_dir: Path, text: str, field: str, value: tuple[str, str]
) -> None:
    written, problem = value
    (app_dir / "stack.yml").write_text(text.replace("%s", written, 1).replace("%s", SECRET))
    with pytest.raises(SpecError) as caught:
        load_stack_file(app_dir / "stack.yml")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{field}: ")
    assert problem in caught.value.problems[0]
    assert len(str(caught.value)) < 1000, "a long name is not quoted whole"


def test_a_key_file_of_an_unknown_users_home_is_refused_naming_the_field(
    stack_dir: Path,
) -> None:
    (stack_dir / "stack.yml").write_text(REGISTERED % "~no-such-user-here/id_ed25519")
    with pytest.raises(SpecError) as caught:
        load_stack_file(stack_dir / "stack.yml")
    assert caught.value.problems == [
        "layers[0].instances[0].ssh.key_file: '~no-such-user-here/id_ed25519' cannot be used "
        "as a path: Could not determine home directory."
    ]


# ---- the recipe inventory: links as the runner ships them ---------------------------------


@pytest.mark.parametrize(
    ("target", "found"),
    [("../common/setup.sh", True), ("OUTSIDE", False), ("missing.sh", False)],
    ids=["inside the tree", "out of the tree", "dangling"],
)
def test_a_linked_recipe_counts_only_if_it_leads_to_a_file_inside_the_cookbooks(
    stack_dir: Path, tmp_path_factory: pytest.TempPathFactory, target: str, found: bool
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "setup.sh"
    outside.write_text("true\n")  # there on this machine, not in what an instance gets
    (stack_dir / "cookbooks" / "common").mkdir()
    (stack_dir / "cookbooks" / "common" / "setup.sh").write_text("true\n")
    (stack_dir / "cookbooks" / "web" / "setup.sh").unlink()
    (stack_dir / "cookbooks" / "web" / "setup.sh").symlink_to(
        target.replace("OUTSIDE", str(outside))
    )
    (stack_dir / "stack.yml").write_text(GOOD)
    if found:
        load_stack_file(stack_dir / "stack.yml")
        return
    with pytest.raises(SpecError) as caught:
        load_stack_file(stack_dir / "stack.yml")
    assert caught.value.problems == [
        "layers[0].recipes.setup[0]: recipe 'web::setup' does not exist in the cookbooks "
        "(as a shell recipe)"
    ]


def test_cookbooks_that_cannot_be_read_are_refused_naming_the_field(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Permissions do not stop root (who runs these tests), so the walk is made to fail.
    def unreadable(top: str, onerror: Any = None, **_: Any) -> Iterator[Any]:
        onerror(PermissionError(13, "Permission denied", f"{top}/secret"))
        yield from ()

    monkeypatch.setattr(os, "walk", unreadable)
    (stack_dir / "stack.yml").write_text(GOOD)
    with pytest.raises(SpecError) as caught:
        load_stack_file(stack_dir / "stack.yml")
    assert caught.value.problems == [
        f"cookbooks.source: cannot read {stack_dir / 'cookbooks'}/secret: Permission denied"
    ]


APP_GOOD = (
    GOOD
    + """\
apps:
  - name: site
    layers: [web]
    source: {source: ./site}
"""
)


def test_source_directories_are_packed_into_the_store_before_sending(
    stack_dir: Path, tmp_path: Path
) -> None:
    from runtime import tree_cache
    from runtime.artifacts import open_store
    from runtime.packing import tree_digest

    (stack_dir / "site").mkdir()
    (stack_dir / "site" / "index.html").write_text("hello\n")
    (stack_dir / "stack.yml").write_text(APP_GOOD)
    store = open_store(str(tmp_path / "store"))
    spec = load_stack_file(stack_dir / "stack.yml", store=store)
    assert spec.cookbooks is not None and spec.cookbooks.artifact is not None
    assert spec.cookbooks.artifact == tree_digest(stack_dir / "cookbooks")
    assert store.has(spec.cookbooks.artifact)
    site = spec.apps[0].source
    assert site is not None and site.artifact is not None and store.has(site.artifact)
    unpacked = tree_cache.tree(store, site.artifact)
    assert (unpacked / "index.html").read_text() == "hello\n"
    # Without a store (plan, offline) the same digest, computed only.
    offline = load_stack_file(stack_dir / "stack.yml")
    assert offline.cookbooks is not None and offline.cookbooks.artifact == spec.cookbooks.artifact


def test_a_link_leading_out_of_the_cookbooks_is_refused_naming_it(stack_dir: Path) -> None:
    (stack_dir / "cookbooks" / "web" / "out.sh").symlink_to("/etc/passwd")
    (stack_dir / "stack.yml").write_text(GOOD)
    with pytest.raises(SpecError) as caught:
        load_stack_file(stack_dir / "stack.yml")
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"{stack_dir / 'stack.yml'}: cookbooks.source: {stack_dir / 'cookbooks' / 'web' / 'out.sh'}"
        ": a link leading out of the tree (to /etc/passwd)"
    )


# ---- app SSL: the key is sealed, a plain key refused ---------------------------------------

SSL_APP = """\
apps:
  - name: store
    layers: [web]
    ssl:
      certificate: |
        -----BEGIN CERTIFICATE-----
        MIIB
        -----END CERTIFICATE-----
      key: %s
"""


def test_an_ssl_key_is_sealed_when_the_file_is_loaded(app_dir: Path) -> None:
    (app_dir / "stack.yml").write_text(
        GOOD + SSL_APP % "{value: '-----BEGIN PRIVATE KEY-----', secure: true}"
    )
    spec = load_stack_file(app_dir / "stack.yml")
    ssl = spec.apps[0].ssl
    assert ssl is not None and isinstance(ssl.key, SecureValue)
    assert decrypt(settings.secret_key(), ssl.key) == "-----BEGIN PRIVATE KEY-----"
    assert "BEGIN PRIVATE KEY" not in json.dumps(spec.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        (
            "'-----BEGIN PRIVATE KEY-----'",
            "apps[0].ssl.key: must be written {value: STRING, secure: true}, not a plain value",
        ),
        (
            "{value: '-----BEGIN PRIVATE KEY-----'}",
            "apps[0].ssl.key: must be written {value: STRING, secure: true} (no other key)",
        ),
        (
            "{value: '-----BEGIN PRIVATE KEY-----', secure: false}",
            "apps[0].ssl.key: must be secure: must be written {value: STRING, secure: true}",
        ),
    ],
)
def test_an_ssl_key_in_plain_text_is_refused_without_quoting_it(
    stack_dir: Path, written: str, problem: str
) -> None:
    (stack_dir / "stack.yml").write_text(GOOD + SSL_APP % written)
    with pytest.raises(SpecError) as caught:
        load_stack_file(stack_dir / "stack.yml")
    assert caught.value.problems == [problem]
    assert "BEGIN PRIVATE KEY" not in str(caught.value)


# ---- placeholders an import left ------------------------------------------------------


class _NeverSeal(Sealer):
    def seal(self, plaintext: str) -> SecureValue:
        raise AssertionError("a file with placeholders must be refused before sealing")


def test_import_placeholders_are_refused_by_field_before_anything_else(
    stack_dir: Path,
) -> None:
    text = GOOD.replace(
        "name: web\n", "name: web\n    load_balancer: '<FILL IN: a target group>'\n"
    )
    text += "colour: blue\n"  # a schema error, which must not even be looked at yet
    text += APPS % "'<FILL IN: the Secure value of DB_PASSWORD, which the import did not have>'"
    (stack_dir / "stack.yml").write_text(text)
    with pytest.raises(SpecError) as caught:
        load_stack_file(stack_dir / "stack.yml", _NeverSeal())
    assert caught.value.problems == [
        "layers[0].load_balancer: <FILL IN: a target group> must be replaced (`opsflow import` "
        "left it for a person to fill in)",
        "apps[0].environment.DB_PASSWORD.value: <FILL IN: the Secure value of DB_PASSWORD, "
        "which the import did not have> must be replaced (`opsflow import` left it for a "
        "person to fill in)",
    ]
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"{stack_dir / 'stack.yml'}: layers[0].load_balancer: <FILL IN")


def test_text_that_only_mentions_fill_in_is_not_a_placeholder(stack_dir: Path) -> None:
    text = GOOD + "custom_json: {note: 'replace <FILL IN: x> markers'}\n"
    (stack_dir / "stack.yml").write_text(text)
    assert load_stack_file(stack_dir / "stack.yml").custom_json == {
        "note": "replace <FILL IN: x> markers"
    }
