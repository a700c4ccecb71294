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

Value = str | int


def header(values: Mapping[str, Value], *, exported: Mapping[str, str] | None = None) -> str:
    """`export NAME='value'` lines for `exported`, then `NAME='value'` lines for `values`."""
    lines = [f"export {_assignment(name, value)}" for name, value in (exported or {}).items()]
    lines += [_assignment(name, value) for name, value in values.items()]
    return "".join(f"{line}\n" for line in lines)


def _assignment(name: str, value: Value) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a shell variable name: {name!r}")
    return f"{name}={shlex.quote(str(value))}"


@functools.cache
def body(package: str, name: str) -> str:
    """The script file `name` shipped in `package` (read once per process)."""
    return files(package).joinpath(*name.split("/")).read_text(encoding="utf-8")


def compose(
    package: str,
    names: Iterable[str],
    values: Mapping[str, Value],
    *,
    exported: Mapping[str, str] | None = None,
) -> str:
    """The header of `values`, then the script files `names` in order."""
    return header(values, exported=exported) + "".join(body(package, name) for name in names)
