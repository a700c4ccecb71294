"""The header that gives a remote script its values, and the shipped scripts themselves."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from activities import remote_script

ACTIVITIES = Path(remote_script.__file__).parent
AWKWARD = ["plain", "with space", "it's", 'a "b" $HOME `id` \\n', "two\nlines", "", "*"]


@pytest.mark.parametrize("value", AWKWARD)
def test_a_value_reaches_the_shell_exactly_as_it_is(value: str) -> None:
    script = remote_script.header({"V": value}, exported={"E": value})
    script += 'printf \'%s|\' "$V"; sh -c \'printf "%s" "$E"\''
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == f"{value}|{value}"


def test_exports_come_first_so_a_later_value_of_the_same_name_wins() -> None:
    script = remote_script.header({"A": "mine"}, exported={"A": "theirs"}) + 'sh -c "echo $A"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == "mine\n"


@pytest.mark.parametrize("name", ["", "1A", "A-B", "A B", "A;rm"])
def test_a_name_that_is_not_a_shell_variable_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a shell variable name"):
        remote_script.header({name: "x"})


def test_a_script_is_read_from_the_package_without_its_comments() -> None:
    text = remote_script.body("activities.recipes", "scripts/report.sh")
    assert text == remote_script.strip((ACTIVITIES / "recipes/scripts/report.sh").read_text())
    assert "echo state=done\n" in text
    assert "#" not in text.splitlines()[0]


def test_blank_and_comment_only_lines_go_but_the_shebang_and_code_stay() -> None:
    script = "#!/bin/sh\n# why\n\n  # indented why\necho a # trailing stays\n\t\ncat x\n# end"
    assert remote_script.strip(script) == "#!/bin/sh\necho a # trailing stays\ncat x\n"


def test_a_line_continued_by_a_backslash_is_kept_whatever_it_holds() -> None:
    script = "echo a \\\n\n# b\necho c\n"
    assert remote_script.strip(script) == "echo a \\\n\necho c\n"


def test_a_script_with_a_here_document_is_left_as_it_is() -> None:
    script = "cat <<EOF\n# data, not a comment\n\nEOF\n"
    assert remote_script.strip(script) == script


def _parsed(script: str) -> str:
    """How bash parses `script`, printed back (comments dropped, code normalised), as the
    body of a function it is not run as."""
    out = subprocess.run(
        ["bash", "-c", 'eval "f() {\n$1\n}" && type f', "_", script],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def test_the_parse_check_sees_a_stripped_line_of_a_multi_line_string() -> None:
    script = 'echo "one\n# two\n"\n'
    assert _parsed(remote_script.strip(script)) != _parsed(script)


@pytest.mark.parametrize(
    "script", sorted(ACTIVITIES.rglob("*.sh")), ids=lambda p: str(p.relative_to(ACTIVITIES))
)
def test_every_shipped_script_parses_the_same_once_stripped(script: Path) -> None:
    text = script.read_text()
    stripped = remote_script.strip(text)
    assert len(stripped) < len(text)
    subprocess.run(["sh", "-n"], input=stripped, text=True, check=True)
    assert _parsed(stripped) == _parsed(text)


@pytest.mark.parametrize(
    "script", sorted(ACTIVITIES.rglob("*.sh")), ids=lambda p: str(p.relative_to(ACTIVITIES))
)
def test_every_shipped_script_parses_as_posix_sh(script: Path) -> None:
    subprocess.run(["sh", "-n", str(script)], check=True)


@pytest.mark.parametrize(
    "script", sorted(ACTIVITIES.rglob("*.sh")), ids=lambda p: str(p.relative_to(ACTIVITIES))
)
def test_every_shipped_script_tells_shellcheck_it_is_posix_sh(script: Path) -> None:
    # Without it a plain `shellcheck FILE` (an editor's, a reviewer's) cannot check it.
    assert script.read_text().splitlines()[0] == "# shellcheck shell=sh"


def test_every_shipped_script_is_package_data_of_its_package() -> None:
    pyproject = tomllib.loads((ACTIVITIES.parent / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    data: dict[str, list[str]] = setuptools["package-data"]
    unshipped = []
    for script in ACTIVITIES.rglob("*.sh"):
        relative = script.relative_to(ACTIVITIES.parent)
        # The deepest listed package that holds the script ships it.
        holders = [
            p for p in setuptools["packages"] if relative.is_relative_to(p.replace(".", "/"))
        ]
        package = max(holders, key=len)
        inside = relative.relative_to(package.replace(".", "/"))
        if not any(inside.match(glob) for glob in data.get(package, [])):
            unshipped.append(str(relative))
    assert unshipped == []
