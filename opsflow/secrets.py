"""Field-level encryption of secure values, so their plaintext never travels or shows.

A stack file may declare a value as `{value: s3cret, secure: true}`. The CLI seals it
while loading the file, so the stack spec (which travels inside Temporal workflow
history) only ever carries a `SecureValue`: `{"secure": true, "ciphertext": ...}`. The
worker's recipe runner turns the ciphertext back into plaintext with `reveal` only when it
writes the attributes file on the instance, and passes every log line it keeps or reports
through `redact`. The CLI shows specs through `conceal`.

Everything here is pure (no disk, no environment): keys come from the caller, usually
`opsflow.settings.secret_key()` (a worker) or runtime/sealing.py (the CLI).

Sealing is public-key, so a CLI can encrypt but not decrypt: the secret key (32 random
bytes, url-safe base64, as OPSFLOW_SECRET_KEY and secret.key have always held) derives an
X25519 key pair with HKDF-SHA256 under its own label; workers hold the secret key, the
CLI needs only the public key (`public_key`), which workers publish. A sealed value is
`v2.` + base64url(ephemeral public key | nonce | AES-256-GCM ciphertext), its AES key
HKDF-derived from the X25519 exchange. Values made before (Fernet under the secret key
itself: AES-128-CBC + HMAC-SHA256) still decrypt, so running stacks keep working. Both are
authenticated (a wrong key or tampered ciphertext is detected, never decrypted to
garbage) and randomised; both reveal the plaintext's approximate length.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsflow.errors import InvalidInput

MASK = "******"
"""What a secure value shows as, wherever it is printed, logged or redacted."""

_UNDECRYPTABLE = "a secure value cannot be decrypted with this key: was OPSFLOW_SECRET_KEY changed?"
SEALED_PREFIX = "v2."
"""What a public-key sealed ciphertext starts with (a Fernet token starts with `gAAAA`)."""
FINGERPRINT_CHARS = 16
_PAIR_LABEL = b"opsflow secure values v2: x25519 private key"
_AEAD_LABEL = b"opsflow secure values v2: aes-256-gcm key"
_PUBLIC_BYTES = 32
_NONCE_BYTES = 12


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


def _private_key(key: bytes) -> X25519PrivateKey:
    """The X25519 private key `key` derives (checked like a Fernet key first)."""
    _fernet(key)
    material = base64.urlsafe_b64decode(key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PAIR_LABEL)
    return X25519PrivateKey.from_private_bytes(derived.derive(material))


def public_key(key: bytes) -> bytes:
    """The public key (32 raw bytes) that seals values only `key` can decrypt."""
    return _private_key(key).public_key().public_bytes_raw()


def fingerprint(public: bytes) -> str:
    """A short hex name of a public key, shown to people and sent with every change."""
    return hashlib.sha256(public).hexdigest()[:FINGERPRINT_CHARS]


def key_fingerprint(key: bytes) -> str:
    """The fingerprint of the public key `key` derives."""
    return fingerprint(public_key(key))


def _aead_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    # Both public keys in the salt bind the AES key to this exchange and this recipient.
    derive = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_AEAD_LABEL
    )
    return AESGCM(derive.derive(shared))


def seal(public: bytes, plaintext: str) -> SecureValue:
    """Encrypt `plaintext` (UTF-8) to `public`: only its secret key can decrypt it."""
    if len(public) != _PUBLIC_BYTES:
        raise InvalidInput("the public key to seal secure values with is not 32 bytes")
    recipient = X25519PublicKey.from_public_bytes(public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    nonce = os.urandom(_NONCE_BYTES)
    aead = _aead_key(ephemeral.exchange(recipient), ephemeral_public, public)
    sealed = aead.encrypt(nonce, plaintext.encode(), _AEAD_LABEL)
    text = base64.urlsafe_b64encode(ephemeral_public + nonce + sealed).decode("ascii")
    return SecureValue(ciphertext=SEALED_PREFIX + text)


def encrypt(key: bytes, plaintext: str) -> SecureValue:
    """Seal `plaintext` to the public key of `key`; safe to log, store and send."""
    return seal(public_key(key), plaintext)


def decrypt(key: bytes, value: SecureValue) -> str:
    """The plaintext of `value`; InvalidInput if `key` is not the one it was encrypted with.

    A sealed (`v2.`) value opens with the private key `key` derives; any other is a Fernet
    token under `key` itself (values made before sealing). The error never carries the
    ciphertext or any plaintext, and is raised `from None` so a traceback does not chain
    cryptography's exception either.
    """
    if value.ciphertext.startswith(SEALED_PREFIX):
        return _open(key, value.ciphertext[len(SEALED_PREFIX) :])
    fernet = _fernet(key)
    try:
        return fernet.decrypt(value.ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise InvalidInput(_UNDECRYPTABLE) from None


def _open(key: bytes, text: str) -> str:
    private = _private_key(key)
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
        if len(raw) < _PUBLIC_BYTES + _NONCE_BYTES + 16:
            raise ValueError("too short")
        ephemeral = raw[:_PUBLIC_BYTES]
        nonce = raw[_PUBLIC_BYTES : _PUBLIC_BYTES + _NONCE_BYTES]
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        aead = _aead_key(shared, ephemeral, private.public_key().public_bytes_raw())
        plain = aead.decrypt(nonce, raw[_PUBLIC_BYTES + _NONCE_BYTES :], _AEAD_LABEL)
        return plain.decode()
    except (InvalidTag, ValueError, UnicodeError):  # binascii.Error is a ValueError
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
