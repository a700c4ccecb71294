"""Stack files on disk: accepted as written, or refused naming file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.stackfile import load_stack_file
from opsflow.errors import SpecError

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
    assert [layer.name for layer in spec.layers] == ["web", "db"]
    assert spec.custom_json == {"shop": {"greeting": "hello"}}
    assert spec.cookbooks is not None
    assert spec.cookbooks.source == str(EXAMPLE.parent / "cookbooks")


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
