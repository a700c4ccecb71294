"""A command's own custom JSON (`deploy`/`run --custom-json`), checked (pure).

OpsWorks let a deployment carry custom JSON (up to 80 KB) that its recipes saw over the
stack's and the layers' (run > layer > stack). opsflow keeps that: the object is merged
last, in the runner, over the configuration and the deploy attributes of that run.

The limit here is 64 KiB of compact JSON: every instance command of the deployment
carries it in workflow history (the deployment's input, each instance's command, each
run's activity input), so it stays well below Temporal's payload limits for any
fan-out. It is not for secrets: it travels and shows (`deployments describe`) as given.
"""

from __future__ import annotations

import json
from typing import Any

from opsflow.errors import InvalidInput

MAX_BYTES = 64 * 1024
"""The largest custom JSON a command takes, in bytes of compact JSON (OpsWorks: 80 KB)."""


def _size(document: dict[str, Any]) -> int:
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())


def check(document: Any, option: str = "--custom-json") -> dict[str, Any]:
    """`document` if it is a JSON object within MAX_BYTES, else InvalidInput naming `option`."""
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a {type(document).__name__}"
        if document is None:
            kind = "null"
        raise InvalidInput(f"{option}: must be a JSON object ({{...}}), not {kind}")
    size = _size(document)
    if size > MAX_BYTES:
        raise InvalidInput(
            f"{option}: {size} bytes is over the limit of {MAX_BYTES} bytes ({MAX_BYTES // 1024} "
            "KiB of compact JSON)"
        )
    return document


def parse(text: str, option: str = "--custom-json", source: str | None = None) -> dict[str, Any]:
    """A JSON object from `text` (read from `source`, a file, when given), checked."""
    where = f"{option}: {source}" if source else option
    if len(text.encode()) > 4 * MAX_BYTES:  # no parse of a huge text just to refuse it
        raise InvalidInput(f"{where}: over the limit of {MAX_BYTES} bytes")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInput(
            f"{where}: not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except RecursionError:
        raise InvalidInput(f"{where}: nested too deeply") from None
    return check(document, where)
