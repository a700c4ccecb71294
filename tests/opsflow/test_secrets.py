"""Secure values: encryption, redaction, and the key's setting (opsflow.secrets, settings)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from rich.pretty import pretty_repr

from opsflow import settings
from opsflow.errors import InvalidInput
from opsflow.secrets import (
    MASK,
    SEALED_PREFIX,
    SecureValue,
    conceal,
    decrypt,
    encrypt,
    fingerprint,
    key_fingerprint,
    new_key,
    public_key,
    redact,
    reveal,
    seal,
    valid_key,
)

KEY = new_key()
SECRET = "s3cret-Passw0rd"


def test_round_trip() -> None:
    for plaintext in [SECRET, "", "ünïcødé ✓", 'a "quoted" \\ value\n']:
        assert decrypt(KEY, encrypt(KEY, plaintext)) == plaintext


def test_ciphertext_does_not_contain_the_plaintext() -> None:
    value = encrypt(KEY, SECRET)
    assert value.secure is True
    assert value.ciphertext != SECRET
    assert SECRET not in value.ciphertext
    assert encrypt(KEY, SECRET).ciphertext != value.ciphertext  # randomised


def test_a_secure_value_shows_only_the_mask() -> None:
    value = encrypt(KEY, SECRET)
    for shown in [repr(value), str(value), f"{value}", repr([value]), pretty_repr(value)]:
        assert SECRET not in shown
        assert value.ciphertext not in shown
        assert MASK in shown
    assert repr(value) == str(value) == MASK
    dumped = value.model_dump_json()
    assert SECRET not in dumped
    assert json.loads(dumped) == {"secure": True, "ciphertext": value.ciphertext}


def test_a_secure_value_is_strictly_shaped() -> None:
    for bad in [
        {"secure": False, "ciphertext": "x"},
        {"secure": 1, "ciphertext": "x"},
        {"secure": True, "ciphertext": "x", "value": SECRET},
        {"secure": True, "ciphertext": ""},
        {"secure": True, "value": SECRET},
    ]:
        with pytest.raises(ValueError):
            SecureValue.model_validate(bad)
    value = encrypt(KEY, SECRET)
    assert SecureValue.model_validate_json(value.model_dump_json()) == value


def test_a_wrong_key_or_tampered_ciphertext_is_invalid_input_without_leaking() -> None:
    value = encrypt(KEY, SECRET)
    tampered = value.ciphertext[:-6] + ("AAAAAA" if value.ciphertext[-6:] != "AAAAAA" else "BBBBBB")
    for key, candidate in [
        (new_key(), value),
        (KEY, SecureValue(ciphertext=tampered)),
        (KEY, SecureValue(ciphertext="not a token")),
    ]:
        with pytest.raises(InvalidInput) as raised:
            decrypt(key, candidate)
        message = str(raised.value)
        assert "OPSFLOW_SECRET_KEY" in message
        assert SECRET not in message
        assert value.ciphertext not in message
        assert raised.value.__cause__ is None
        assert raised.value.__suppress_context__


def test_a_value_sealed_with_the_public_key_alone_opens_with_the_secret_key() -> None:
    public = public_key(KEY)
    value = seal(public, SECRET)
    assert value.ciphertext.startswith(SEALED_PREFIX)
    assert SECRET not in value.ciphertext
    assert decrypt(KEY, value) == SECRET
    assert seal(public, SECRET).ciphertext != value.ciphertext  # randomised
    with pytest.raises(InvalidInput):
        decrypt(new_key(), value)


def test_values_made_before_sealing_still_decrypt() -> None:
    """Fernet tokens under the key itself: what running stacks' histories hold."""
    legacy = SecureValue(ciphertext=Fernet(KEY).encrypt(SECRET.encode()).decode())
    assert decrypt(KEY, legacy) == SECRET
    assert reveal({"a": legacy.model_dump()}, KEY) == ({"a": SECRET}, [SECRET])


def test_the_key_pair_derivation_never_changes() -> None:
    """Known answer: every sealed value in a running stack depends on this derivation."""
    key = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0..31
    assert public_key(key).hex() == (
        "e62c4c6a9bcb1c6b8492aa61dd3ddcfc9e32d53d2a4daeaabb10bc16cc352866"
    )
    assert key_fingerprint(key) == fingerprint(public_key(key)) == "496b692ff9d73cdd"
    assert key_fingerprint(new_key()) != key_fingerprint(key)


def test_a_malformed_public_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="32 bytes"):
        seal(b"short", SECRET)


def test_a_malformed_key_is_invalid_input() -> None:
    assert valid_key(KEY)
    for key in [b"", b"short", KEY[:-4]]:
        assert not valid_key(key)
        with pytest.raises(InvalidInput, match="OPSFLOW_SECRET_KEY"):
            encrypt(key, SECRET)
    assert Fernet(new_key())  # new_key makes keys Fernet accepts


def test_redact_masks_every_secret_and_leaves_other_text() -> None:
    text = f"connecting with {SECRET} as admin; retry with {SECRET}."
    assert redact(text, [SECRET]) == f"connecting with {MASK} as admin; retry with {MASK}."
    assert redact(text, []) == text
    assert redact(text, [""]) == text
    assert redact("", [SECRET]) == ""
    assert redact("nothing here", [SECRET]) == "nothing here"


def test_redact_prefers_the_longest_and_masks_overlaps_entirely() -> None:
    assert redact("pw=hunter2!", ["hunter", "hunter2!"]) == f"pw={MASK}"
    assert redact("pw=hunter2!", ["hunter2!", "hunter"]) == f"pw={MASK}"
    # Overlapping occurrences of different secrets: no part of either survives.
    assert redact("xabcdx", ["abc", "bcd"]) == f"x{MASK}x"
    assert redact("xabcdx", ["ab", "bcd"]) == f"x{MASK}x"
    assert redact("aaaa", ["aaa"]) == MASK
    assert redact("one two", ["one", "two"]) == f"{MASK} {MASK}"


def test_redact_masks_json_escaped_forms() -> None:
    secret = 'pa"ss\\word'
    as_json = json.dumps({"password": secret})
    assert secret not in as_json  # escaped in JSON
    redacted = redact(as_json, [secret])
    assert redacted == json.dumps({"password": MASK})
    unicode_secret = "clé-secrète"
    ascii_json = json.dumps({"p": unicode_secret})
    utf8_json = json.dumps({"p": unicode_secret}, ensure_ascii=False)
    assert redact(ascii_json, [unicode_secret]) == json.dumps({"p": MASK})
    assert redact(utf8_json, [unicode_secret]) == json.dumps({"p": MASK})


def test_very_short_secrets_also_mask_innocent_text() -> None:
    assert redact("a1b1", ["1"]) == f"a{MASK}b{MASK}"


def test_reveal_and_conceal_walk_nested_documents() -> None:
    password = encrypt(KEY, SECRET)
    token = encrypt(KEY, "tok-123")
    document = {
        "env": {"PASSWORD": password.model_dump(), "PLAIN": "visible"},
        "list": [1, None, True, {"TOKEN": token}, ["x", password.model_dump()]],
        "cookie": {"secure": True, "httponly": True},  # an ordinary attribute, not a secret
        "almost": {"secure": True, "ciphertext": 5},
    }
    before = json.dumps(document, default=lambda v: v.model_dump())
    revealed, plaintexts = reveal(document, KEY)
    assert revealed == {
        "env": {"PASSWORD": SECRET, "PLAIN": "visible"},
        "list": [1, None, True, {"TOKEN": "tok-123"}, ["x", SECRET]],
        "cookie": {"secure": True, "httponly": True},
        "almost": {"secure": True, "ciphertext": 5},
    }
    assert sorted(plaintexts) == sorted([SECRET, "tok-123", SECRET])
    assert json.dumps(document, default=lambda v: v.model_dump()) == before  # not mutated
    concealed = conceal(document)
    assert concealed == {
        "env": {"PASSWORD": MASK, "PLAIN": "visible"},
        "list": [1, None, True, {"TOKEN": MASK}, ["x", MASK]],
        "cookie": {"secure": True, "httponly": True},
        "almost": {"secure": True, "ciphertext": 5},
    }
    assert reveal("scalar", KEY) == ("scalar", [])
    assert reveal(password, KEY) == (SECRET, [SECRET])
    assert conceal(password) == MASK


def test_reveal_with_the_wrong_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="OPSFLOW_SECRET_KEY"):
        reveal({"env": {"P": encrypt(KEY, SECRET).model_dump()}}, new_key())
    with pytest.raises(InvalidInput, match="OPSFLOW_SECRET_KEY"):
        reveal([{"secure": True, "ciphertext": ""}], KEY)
    assert conceal([{"secure": True, "ciphertext": ""}]) == [MASK]


@given(
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    secret=st.text(min_size=1, max_size=20).filter(lambda s: "*" not in s),
    others=st.lists(st.text(max_size=8), max_size=3),
)
def test_redact_never_leaves_the_secret(
    before: str, after: str, secret: str, others: list[str]
) -> None:
    # `*` is excluded: a secret made of mask characters can be found in the mask itself.
    for text in [before + secret + after, json.dumps(before + secret + after)]:
        assert secret not in redact(text, [secret, *others])


@given(text=st.text(alphabet="abc", max_size=30), secrets=st.lists(st.text("abc"), max_size=3))
def test_redact_keeps_text_outside_every_occurrence(text: str, secrets: list[str]) -> None:
    redacted = redact(text, secrets)
    if not any(s and s in text for s in secrets):
        assert redacted == text
    else:
        assert MASK in redacted


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPSFLOW_SECRET_KEY", raising=False)
    return tmp_path / "home"


def test_secret_key_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", key.decode() + "\n")
    assert settings.secret_key() == key
    assert not (home / "secret.key").exists()


def test_a_malformed_secret_key_in_the_environment_is_invalid_input(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", "not-a-key")
    with pytest.raises(InvalidInput, match="OPSFLOW_SECRET_KEY") as raised:
        settings.secret_key()
    assert "not-a-key" not in str(raised.value)


def test_secret_key_file_is_created_private_and_reused(home: Path) -> None:
    key = settings.secret_key()
    assert valid_key(key)
    path = home / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.secret_key() == key
    assert os.listdir(home) == ["secret.key"]  # no temporary file left behind
    assert decrypt(settings.secret_key(), encrypt(key, SECRET)) == SECRET


def test_an_existing_key_file_is_not_replaced(home: Path) -> None:
    home.mkdir()
    key = new_key()
    (home / "secret.key").write_bytes(key + b"\n")
    assert settings.secret_key() == key


def test_a_corrupt_key_file_is_invalid_input(home: Path) -> None:
    home.mkdir()
    (home / "secret.key").write_text("garbage")
    with pytest.raises(InvalidInput, match=r"secret\.key"):
        settings.secret_key()


def test_validation_errors_do_not_quote_their_input() -> None:
    with pytest.raises(ValueError) as raised:
        SecureValue.model_validate({"secure": True, "value": SECRET})
    assert SECRET not in str(raised.value)


def test_racing_first_uses_agree_on_one_key(home: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: settings.secret_key(), range(32)))
    assert keys == {(home / "secret.key").read_bytes().strip()}
    assert os.listdir(home) == ["secret.key"]
