"""Finding the `<FILL IN: reason>` placeholders an import left in a stack file, by field
path, so the loader refuses them before anything else reads the file."""

from __future__ import annotations

import re
from typing import Any

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
