"""Field-level encryption of secure values, so their plaintext never travels or shows.

A stack file may declare a value as `{value: s3cret, secure: true}`. The CLI encrypts it
with `encrypt` while loading the file, so the stack spec (which travels inside Temporal
workflow history) only ever carries a `SecureValue`: `{"secure": true, "ciphertext": ...}`.
The worker's recipe runner turns the ciphertext back into plaintext with `reveal` only
when it writes the attributes file on the instance, and passes every log line it keeps or
reports through `redact`. The CLI shows specs through `conceal`.

Everything here is pure (no disk, no environment): the key comes from the caller, usually
`opsflow.settings.secret_key()`.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) is authenticated: a wrong key or
tampered ciphertext is detected rather than decrypted to garbage. It is also randomised,
so encrypting the same plaintext twice gives different ciphertexts; it does reveal the
plaintext's approximate length.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsflow.errors import InvalidInput

MASK = "******"
"""What a secure value shows as, wherever it is printed, logged or redacted."""

_UNDECRYPTABLE = "a secure value cannot be decrypted with this key: was OPSFLOW_SECRET_KEY changed?"


class SecureValue(BaseModel):
    """An encrypted value as it travels in a stack spec: `{"secure": true, "ciphertext": ...}`.

    Only the ciphertext is ever stored, so dumping the model (for workflow history) is
    safe. `repr`, `str` and rich's pretty printer show only the mask, so that a value
    printed by accident (a log line, an exception, a debugger) gives nothing away, not
    even the ciphertext.
    """

    # hide_input_in_errors: a validation error must not quote what it was given, which
    # may be a plaintext (`{secure: true, value: s3cret}`).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, hide_input_in_errors=True)

    secure: Literal[True] = True
    ciphertext: str = Field(repr=False, min_length=1)

    @field_validator("secure", mode="before")
    @classmethod
    def _exactly_true(cls, value: object) -> object:
        """Literal[True] also accepts 1 (1 == True); only the boolean marks a secure value."""
        if value is not True:
            raise ValueError("must be true")
        return value

    def __repr__(self) -> str:
        return MASK

    def __str__(self) -> str:
        return MASK

    def __rich_repr__(self) -> Iterator[Any]:
        """rich pretty-prints pydantic models field by field; show the mask instead."""
        yield MASK


def new_key() -> bytes:
    """A fresh random key (url-safe base64 of 32 bytes), as `OPSFLOW_SECRET_KEY` expects."""
    return Fernet.generate_key()


def _fernet(key: bytes) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        # Fernet's own message is fine, but say which setting is wrong, never the key.
        raise InvalidInput(
            "the secret key is not valid: OPSFLOW_SECRET_KEY must be 32 url-safe "
            "base64-encoded bytes (as made by `Fernet.generate_key()`)"
        ) from None


def encrypt(key: bytes, plaintext: str) -> SecureValue:
    """Encrypt `plaintext` (UTF-8) with `key`; the result is safe to log, store and send."""
    return SecureValue(ciphertext=_fernet(key).encrypt(plaintext.encode()).decode("ascii"))


def decrypt(key: bytes, value: SecureValue) -> str:
    """The plaintext of `value`; InvalidInput if `key` is not the one it was encrypted with.

    The error never carries the ciphertext or any plaintext, and is raised `from None` so
    a traceback does not chain cryptography's exception either.
    """
    fernet = _fernet(key)
    try:
        return fernet.decrypt(value.ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise InvalidInput(_UNDECRYPTABLE) from None


def _as_secure(node: Any) -> SecureValue | None:
    """`node` as a SecureValue if it is one, or its exact dumped form; else None.

    Deliberately strict (exactly the keys `secure` and `ciphertext`, `secure` the boolean
    True, a string ciphertext) so that ordinary attributes such as a cookie's
    `{"secure": true, "httponly": true}` are left alone.
    """
    if isinstance(node, SecureValue):
        return node
    if (
        isinstance(node, dict)
        and node.keys() == {"secure", "ciphertext"}
        and node["secure"] is True
        and isinstance(node["ciphertext"], str)
    ):
        # Not validated: an empty ciphertext then fails to decrypt (InvalidInput), and is
        # still concealed, rather than raising pydantic's ValidationError from a walk.
        return SecureValue.model_construct(ciphertext=node["ciphertext"])
    return None


def _walk(document: Any, replace: Any) -> Any:
    """A copy of a JSON-like document with each secure value replaced by `replace(value)`."""
    secure = _as_secure(document)
    if secure is not None:
        return replace(secure)
    if isinstance(document, dict):
        return {k: _walk(v, replace) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [_walk(v, replace) for v in document]
    return document


def reveal(document: Any, key: bytes) -> tuple[Any, list[str]]:
    """Decrypt every secure value in a JSON-like document (dicts, lists, scalars).

    Returns the document with each secure value replaced by its plaintext (a new
    document; the input is not changed) and the plaintexts, to pass to `redact` for every
    log line produced while the document is in use. Raises InvalidInput if any value
    cannot be decrypted with `key`.
    """
    plaintexts: list[str] = []

    def replace(value: SecureValue) -> str:
        plaintext = decrypt(key, value)
        plaintexts.append(plaintext)
        return plaintext

    return _walk(document, replace), plaintexts


def conceal(document: Any) -> Any:
    """The document with each secure value shown as the mask, for CLI output."""
    return _walk(document, lambda _value: MASK)


def _forms(secret: str) -> set[str]:
    """The ways a secret can appear in text: as is, and escaped inside a JSON string."""
    forms = {secret}
    for ensure_ascii in (True, False):
        forms.add(json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1])
    return {form for form in forms if form}


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret (or its JSON-escaped form) masked.

    Occurrences are found independently, even when they overlap (secrets `abc` and `bcd`
    in `abcd`), and each run of overlapping or adjacent occurrences becomes a single
    mask, so no part of any occurrence survives; a longer secret thus wins over a
    shorter one it contains. Every non-empty secret is redacted, however short: a very
    short secret (`1`, `ab`) also masks innocent text that happens to contain it, which
    is the price of never showing it.

    Text is matched as given: apply this to whole lines or whole outputs, not to chunks
    that might split a secret. A secret containing `*` may still be found in the result,
    overlapping a mask; what shows then is the mask and text that was not part of any
    occurrence.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= _forms(secret)
    if not forms or not text:
        return text
    covered: list[tuple[int, int]] = []
    for form in forms:
        start = text.find(form)
        while start != -1:
            covered.append((start, start + len(form)))
            start = text.find(form, start + 1)
    if not covered:
        return text
    covered.sort()
    pieces: list[str] = []
    position = 0
    run_start, run_end = covered[0]
    for start, end in covered[1:]:
        if start <= run_end:
            run_end = max(run_end, end)
            continue
        pieces += [text[position:run_start], MASK]
        position, run_start, run_end = run_end, start, end
    pieces += [text[position:run_start], MASK, text[run_end:]]
    return "".join(pieces)


def valid_key(key: bytes) -> bool:
    """Whether `key` is a usable key (url-safe base64 of exactly 32 bytes)."""
    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True
