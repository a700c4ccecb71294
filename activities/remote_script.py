"""Shell scripts sent to instances, kept as real `.sh` files next to the activity that
sends them (package data; `make lint` runs `sh -n` and shellcheck on each). A script gets
its values from a generated header of `NAME='value'` assignments: this module builds it,
the one place that quotes what reaches a remote shell from a script's values.

The scripts are POSIX sh (an instance's sh may be dash)."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterable, Mapping
from importlib.resources import files

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A line with its newline (the last may have none): the shell's lines, not splitlines()'s.
_LINE = re.compile(r"[^\n]*\n|[^\n]+$")

Value = str | int


def header(values: Mapping[str, Value], *, exported: Mapping[str, str] | None = None) -> str:
    """`export NAME='value'` lines for `exported`, then `NAME='value'` lines for `values`."""
    lines = [f"export {_assignment(name, value)}" for name, value in (exported or {}).items()]
    lines += [_assignment(name, value) for name, value in values.items()]
    return "".join(f"{line}\n" for line in lines)


def _assignment(name: str, value: Value) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a shell variable name: {name!r}")
    return f"{name}={shlex.quote(str(value))}"


@functools.cache
def body(package: str, name: str) -> str:
    """The script file `name` shipped in `package`, stripped (read once per process)."""
    return strip(files(package).joinpath(*name.split("/")).read_text(encoding="utf-8"))


def strip(script: str) -> str:
    """`script` without its blank and comment-only lines, which every command would carry
    to the instance for nothing; a shebang stays.

    Line-based, so a script with a here-document (a `#` line inside one is data) is left
    as it is. A multi-line quoted string is not detected here: tests/activities/
    test_remote_script.py checks every shipped script parses the same once stripped."""
    if "<<" in script:
        return script
    kept: list[str] = []
    for number, line in enumerate(_LINE.findall(script)):
        text = line.strip()
        continued = bool(kept) and kept[-1].rstrip("\n").endswith("\\")
        shebang = number == 0 and text.startswith("#!")
        if continued or shebang or (text and not text.startswith("#")):
            kept.append(line)
    return "".join(kept)


def compose(
    package: str,
    names: Iterable[str],
    values: Mapping[str, Value],
    *,
    exported: Mapping[str, str] | None = None,
) -> str:
    """The header of `values`, then the script files `names` in order."""
    return header(values, exported=exported) + "".join(body(package, name) for name in names)
