"""Finding the `<FILL IN: reason>` placeholders an import left in a stack file, by field
path, so the loader refuses them before anything else reads the file."""

from __future__ import annotations

import re
from typing import Any

from opsflow.importing.model import FILL_IN

_PLACEHOLDER = re.compile(r"^<FILL IN: (?P<reason>.*)>$", re.DOTALL)


def placeholder_reason(value: Any) -> str | None:
    """The reason of a `<FILL IN: reason>` placeholder; None for any other value."""
    if not isinstance(value, str):
        return None
    found = _PLACEHOLDER.fullmatch(value.strip())
    return found["reason"] if found else None


def placeholders(document: Any, path: str = "") -> list[tuple[str, str]]:
    """(field path, reason) of each placeholder in a loaded YAML document, in file order:
    `apps[0].environment.DB_PASSWORD.value`, `layers[1].load_balancer`."""
    found: list[tuple[str, str]] = []
    if isinstance(document, dict):
        for key, value in document.items():
            found += placeholders(value, f"{path}.{key}" if path else str(key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += placeholders(value, f"{path}[{index}]")
    else:
        reason = placeholder_reason(document)
        if reason is not None:
            found.append((path or "(the document)", reason))
    return found


def withhold_secrets(document: Any, reason: str, path: str = "") -> tuple[Any, list[str]]:
    """`document` with the value of each `{value: ..., secure: true}` that holds a secret
    (not already a placeholder) replaced by a placeholder with `reason`, and the field
    paths replaced: a stack file printed to a terminal must not show them."""
    if isinstance(document, dict):
        if document.get("secure") is True and isinstance(document.get("value"), str):
            if placeholder_reason(document["value"]) is None:
                return {**document, "value": FILL_IN.format(reason=reason)}, [f"{path}.value"]
            return document, []
        found: list[str] = []
        copy: dict[Any, Any] = {}
        for key, value in document.items():
            copy[key], inner = withhold_secrets(value, reason, f"{path}.{key}" if path else key)
            found += inner
        return copy, found
    if isinstance(document, list):
        items = []
        found = []
        for index, value in enumerate(document):
            item, inner = withhold_secrets(value, reason, f"{path}[{index}]")
            items.append(item)
            found += inner
        return items, found
    return document, []
