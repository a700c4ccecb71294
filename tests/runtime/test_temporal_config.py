"""Which Temporal to reach and how, as the SDK's environment configuration says: the
variables and a TOML profile resolve as they do for the `temporal` CLI, and what cannot
be used is an error naming the setting or the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from temporalio.service import TLSConfig

from opsflow.errors import InvalidInput
from runtime import temporal_config
from runtime.temporal_config import load
from tests.tls_proxy import Certificates, clear_temporal_settings, make_certificates


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No TEMPORAL_* of the machine running the tests, and no profile file of its user."""
    clear_temporal_settings(monkeypatch, tmp_path)
    monkeypatch.setenv("OPSFLOW_DEV_PORT", "7999")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def tls_of(target: temporal_config.TemporalTarget) -> TLSConfig:
    assert isinstance(target.tls, TLSConfig)
    return target.tls


def test_nothing_configured_is_the_embedded_dev_server_without_tls() -> None:
    target = load()
    assert target.connect_kwargs() == {
        "target_host": "localhost:7999",
        "namespace": "default",
        "tls": False,
    }
    assert temporal_config.address() == "localhost:7999"
    assert temporal_config.namespace() == "default"


def test_tls_variables_give_the_files_contents(
    certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "prod")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(certs.ca))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs.client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(certs.client.key))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "localhost")
    target = load()
    tls = tls_of(target)
    assert (target.address, target.namespace) == ("temporal.example:7233", "prod")
    assert tls.server_root_ca_cert == certs.ca.read_bytes()
    assert tls.client_cert == certs.client.cert.read_bytes()
    assert tls.client_private_key == certs.client.key.read_bytes()
    assert tls.domain == "localhost"
    assert target.has_client_cert


def test_pem_data_variables_are_used_as_they_are(
    certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_DATA", certs.client.cert.read_text())
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_DATA", certs.client.key.read_text())
    tls = tls_of(load())
    assert tls.client_cert == certs.client.cert.read_bytes()
    assert tls.client_private_key == certs.client.key.read_bytes()


def test_tls_true_alone_is_tls_with_the_systems_cas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_TLS", "true")
    tls = tls_of(load())
    assert (tls.server_root_ca_cert, tls.client_cert) == (None, None)


@pytest.mark.parametrize("value", ["false", "0", "FALSE"])
def test_tls_false_turns_it_off_even_with_files(
    value: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS", value)
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(certs.ca))
    assert load().tls is False


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK alone reads TEMPORAL_TLS= as "TLS on"; every other opsflow setting as unset.
    monkeypatch.setenv("TEMPORAL_TLS", "")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "")
    assert load().connect_kwargs()["tls"] is False
    assert load().address == "localhost:7999"


def test_a_tls_value_that_is_neither_true_nor_false_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS", "off")
    with pytest.raises(InvalidInput, match="TEMPORAL_TLS must be true or false, not 'off'"):
        load()


def test_an_api_key_turns_tls_on_and_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_API_KEY", "key-that-must-not-leak")
    target = load()
    assert target.connect_kwargs()["api_key"] == "key-that-must-not-leak"
    assert target.connect_kwargs()["tls"] is True  # as the SDK does for a key
    assert "key-that-must-not-leak" not in repr(target) + str(target)


def test_the_private_key_is_not_in_the_targets_repr(
    certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs.client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(certs.client.key))
    monkeypatch.setenv("TEMPORAL_GRPC_META_AUTHORIZATION", "Bearer secret-meta")
    target = load()
    assert target.connect_kwargs()["rpc_metadata"] == {"authorization": "Bearer secret-meta"}
    assert "PRIVATE KEY" not in repr(target)
    assert "secret-meta" not in repr(target)


def test_a_missing_certificate_file_names_the_variable_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope" / "client.pem"
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(missing))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(missing))
    with pytest.raises(InvalidInput) as caught:
        load()
    assert str(caught.value) == f"TEMPORAL_TLS_CLIENT_CERT_PATH: {missing} does not exist"


@pytest.mark.parametrize(
    ("variable", "what"),
    [
        ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "certificate"),
        ("TEMPORAL_TLS_CLIENT_CERT_PATH", "certificate"),
        ("TEMPORAL_TLS_CLIENT_KEY_PATH", "private key"),
    ],
)
def test_a_file_without_its_pem_is_refused_before_connecting(
    variable: str, what: str, certs: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CA file without a certificate would otherwise be "no CA": an untrusted server.
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs.client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(certs.client.key))
    monkeypatch.setenv(variable, str(not_pem))
    with pytest.raises(InvalidInput) as caught:
        load()
    assert str(caught.value) == f"{variable}: {not_pem} holds no PEM {what}"


DAMAGED = "-----BEGIN {0}-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END {0}-----\n"


@pytest.mark.parametrize(
    ("variable", "text", "problem"),
    [
        ("SERVER_CA_CERT", DAMAGED.format("CERTIFICATE"), "a PEM certificate that cannot be read"),
        ("CLIENT_CERT", DAMAGED.format("CERTIFICATE"), "a PEM certificate that cannot be read"),
        ("CLIENT_KEY", DAMAGED.format("PRIVATE KEY"), "a PEM private key that cannot be read"),
    ],
)
def test_pem_damaged_inside_is_refused_before_connecting(
    variable: str, text: str, problem: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The core would ignore a damaged CA (then report an untrusted server).
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs.client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(certs.client.key))
    monkeypatch.delenv(f"TEMPORAL_TLS_{variable}_PATH", raising=False)
    monkeypatch.setenv(f"TEMPORAL_TLS_{variable}_DATA", text)
    with pytest.raises(InvalidInput) as caught:
        load()
    assert str(caught.value) == f"TEMPORAL_TLS_{variable}_DATA holds {problem}"


def test_an_encrypted_private_key_is_refused(
    certs: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = serialization.load_pem_private_key(certs.client.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs.client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(encrypted))
    with pytest.raises(InvalidInput, match="holds an encrypted private key"):
        load()


def test_pem_data_without_a_certificate_names_the_data_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_DATA", "hello")
    with pytest.raises(InvalidInput, match=r"^TEMPORAL_TLS_SERVER_CA_CERT_DATA holds no PEM"):
        load()


def test_a_certificate_without_its_key_is_refused(
    certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs.client.cert))
    with pytest.raises(InvalidInput, match="set both TEMPORAL_TLS_CLIENT_CERT_PATH and "):
        load()


def test_path_and_data_of_one_file_together_are_refused(
    certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs.client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_DATA", certs.client.cert.read_text())
    with pytest.raises(InvalidInput, match="TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_"):
        load()


def profile_file(tmp_path: Path, certs: Certificates, client_cert: Path | None = None) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(
        '[profile.default]\naddress = "default.example:7233"\n\n'
        '[profile.secure]\naddress = "127.0.0.1:7443"\nnamespace = "ops"\n'
        "[profile.secure.tls]\n"
        f'server_ca_cert_path = "{certs.ca}"\n'
        f'client_cert_path = "{client_cert or certs.client.cert}"\n'
        f'client_key_path = "{certs.client.key}"\n'
    )
    return path


def test_a_profile_of_the_config_file_is_read(
    tmp_path: Path, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile_file(tmp_path, certs)))
    assert load().address == "default.example:7233"
    monkeypatch.setenv("TEMPORAL_PROFILE", "secure")
    target = load()
    assert (target.address, target.namespace) == ("127.0.0.1:7443", "ops")
    assert tls_of(target).client_cert == certs.client.cert.read_bytes()
    assert temporal_config.address() == "127.0.0.1:7443"
    assert temporal_config.namespace() == "ops"


def test_variables_override_the_profile(
    tmp_path: Path, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile_file(tmp_path, certs)))
    monkeypatch.setenv("TEMPORAL_PROFILE", "secure")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "other")
    assert load().namespace == "other"


def test_the_default_config_file_is_read_when_none_is_named(
    tmp_path: Path, certs: Certificates
) -> None:
    default = tmp_path / "config" / "temporalio" / "temporal.toml"
    default.parent.mkdir(parents=True)
    default.write_text(profile_file(tmp_path, certs).read_text())
    assert temporal_config.default_config_file() == default
    assert temporal_config.address() == "default.example:7233"


def test_a_missing_file_of_a_profile_names_the_profile_key_and_file(
    tmp_path: Path, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = profile_file(tmp_path, certs, client_cert=tmp_path / "gone.pem")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(file))
    monkeypatch.setenv("TEMPORAL_PROFILE", "secure")
    with pytest.raises(InvalidInput) as caught:
        load()
    assert str(caught.value) == (
        f"TEMPORAL_TLS_CLIENT_CERT_PATH or tls.client_cert_path of profile 'secure' in "
        f"{file}: {tmp_path / 'gone.pem'} does not exist"
    )


def test_a_malformed_profile_file_names_the_file_and_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "temporal.toml"
    file.write_text('[profile.default]\naddress = "x:1"\nnamespace = 5\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(file))
    with pytest.raises(InvalidInput, match=rf"^{file}: .*line 3") as caught:
        load()
    assert "expected a string" in str(caught.value)


def test_a_named_config_file_that_does_not_exist_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "absent.toml"))
    with pytest.raises(InvalidInput, match=r"^TEMPORAL_CONFIG_FILE: .*absent\.toml does not exist"):
        load()
    with pytest.raises(InvalidInput):
        temporal_config.address()  # not quietly the embedded server


def test_an_unknown_profile_is_refused(
    tmp_path: Path, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = profile_file(tmp_path, certs)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(file))
    monkeypatch.setenv("TEMPORAL_PROFILE", "staging")
    with pytest.raises(InvalidInput, match=rf"^{file}: .*'staging' not found \(TEMPORAL_PROFILE\)"):
        load()


def test_a_profile_without_any_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "secure")
    with pytest.raises(InvalidInput, match="TEMPORAL_PROFILE='secure': there is no profile file"):
        load()
