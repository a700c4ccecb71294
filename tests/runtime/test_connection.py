"""Reaching Temporal: the cheap probe an offline command uses before it connects, and
`connect` through nginx requiring a client certificate in front of the real dev server:
the right certificate goes through, every refusal says what was refused."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from opsflow.errors import InvalidInput, OpsflowError, Unreachable
from runtime.connection import answers, connect, explain
from runtime.temporal_config import TemporalTarget
from tests.tls_proxy import (
    Certificates,
    Pair,
    clear_temporal_settings,
    make_certificates,
    mtls_proxy,
)


def test_answers_when_something_listens_and_not_when_nothing_does() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert answers(f"127.0.0.1:{port}")
    assert not answers(f"127.0.0.1:{port}")  # closed now


def test_an_address_that_is_not_host_port_is_left_to_connect() -> None:
    assert answers("no-port-here")


def test_the_probe_goes_to_the_address_of_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiles = tmp_path / "temporal.toml"
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profiles))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        profiles.write_text(f'[profile.default]\naddress = "127.0.0.1:{server.getsockname()[1]}"\n')
        assert answers()
    assert not answers()  # closed now: the profile's address, not the embedded default


# ---- through nginx requiring a client certificate (tests/tls_proxy.py) -----------------


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No TEMPORAL_* of the machine running the tests, and no profile file of its user."""
    clear_temporal_settings(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def dev_address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


@pytest.fixture(scope="module")
def proxy(
    dev_address: str, certs: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with mtls_proxy(dev_address, certs, tmp_path_factory.mktemp("nginx")) as address:
        yield address


@pytest.fixture(scope="module")
def keyed_proxy(
    dev_address: str, certs: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    prefix = tmp_path_factory.mktemp("nginx-keyed")
    with mtls_proxy(dev_address, certs, prefix, api_key=API_KEY) as address:
        yield address


API_KEY = "tls-test-api-key"


def use(monkeypatch: pytest.MonkeyPatch, **variables: str | Path) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"TEMPORAL_{name}", str(value))


def use_client_cert(monkeypatch: pytest.MonkeyPatch, certs: Certificates, pair: Pair) -> None:
    use(
        monkeypatch,
        TLS_SERVER_CA_CERT_PATH=certs.ca,
        TLS_CLIENT_CERT_PATH=pair.cert,
        TLS_CLIENT_KEY_PATH=pair.key,
    )


async def refusal(monkeypatch: pytest.MonkeyPatch, address: str) -> OpsflowError:
    monkeypatch.setenv("TEMPORAL_ADDRESS", address)
    with pytest.raises(OpsflowError) as caught:
        await connect()
    return caught.value


async def test_the_right_client_certificate_goes_through(
    proxy: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, ADDRESS=proxy)
    use_client_cert(monkeypatch, certs, certs.client)
    client = await connect()
    assert client.service_client.config.target_host == proxy
    assert (await client.count_workflows()).count >= 0


async def test_without_a_client_certificate_the_handshake_is_refused(
    proxy: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, TLS_SERVER_CA_CERT_PATH=certs.ca)
    err = await refusal(monkeypatch, proxy)
    assert isinstance(err, Unreachable)
    assert str(err) == (
        f"Temporal at {proxy} refused the TLS handshake: a client certificate is required "
        "(TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_KEY_PATH)"
    )


async def test_a_certificate_of_another_ca_is_not_accepted(
    proxy: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_client_cert(monkeypatch, certs, certs.stranger)
    err = await refusal(monkeypatch, proxy)
    assert str(err) == (
        f"Temporal at {proxy} refused the TLS handshake: the client certificate "
        "(TEMPORAL_TLS_CLIENT_CERT_PATH) was not accepted"
    )


async def test_a_server_of_another_ca_is_not_trusted(
    proxy: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_client_cert(monkeypatch, certs, certs.client)
    use(monkeypatch, TLS_SERVER_CA_CERT_PATH=certs.other_ca)
    err = await refusal(monkeypatch, proxy)
    assert isinstance(err, Unreachable)
    assert str(err).startswith(
        f"Temporal at {proxy}: its TLS certificate is not trusted: not signed by the server "
        "CA (TEMPORAL_TLS_SERVER_CA_CERT_PATH"
    )


async def test_a_server_name_its_certificate_does_not_hold_is_refused(
    proxy: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_client_cert(monkeypatch, certs, certs.client)
    use(monkeypatch, TLS_SERVER_NAME="temporal.example.com")
    err = await refusal(monkeypatch, proxy)
    assert "its TLS certificate is not valid for the name asked for" in str(err)
    assert "TEMPORAL_TLS_SERVER_NAME" in str(err)


async def test_tls_to_a_plain_server_and_plain_to_a_tls_one_say_so(
    proxy: str, dev_address: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = await refusal(monkeypatch, proxy)
    assert str(plain) == (
        f"Temporal at {proxy} broke off the connection: does it expect TLS? (TEMPORAL_TLS)"
    )
    use_client_cert(monkeypatch, certs, certs.client)
    err = await refusal(monkeypatch, dev_address)
    assert str(err) == (
        f"Temporal at {dev_address} does not speak TLS: is TLS on there? (TEMPORAL_TLS=false)"
    )


async def test_a_key_that_is_not_the_certificates_is_bad_input(
    proxy: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_client_cert(monkeypatch, certs, certs.client)
    use(monkeypatch, TLS_CLIENT_KEY_PATH=certs.stranger.key)
    err = await refusal(monkeypatch, proxy)
    assert isinstance(err, InvalidInput)
    assert str(err) == (
        "TEMPORAL_TLS_CLIENT_KEY_PATH: not the private key of the client certificate "
        "(TEMPORAL_TLS_CLIENT_CERT_PATH)"
    )


@pytest.mark.parametrize(
    ("core_says", "message"),
    [
        (
            "Transport, InvalidCertificate(BadEncoding)",
            "TEMPORAL_TLS_CLIENT_CERT_PATH: the client certificate cannot be read as PEM",
        ),
        (
            'General("failed to parse private key as RSA, ECDSA, or EdDSA")',
            "TEMPORAL_TLS_CLIENT_KEY_PATH: the private key cannot be read as PEM",
        ),
    ],
)
def test_pem_the_core_cannot_read_is_bad_input(core_says: str, message: str) -> None:
    # What the core said for PEM files damaged inside (runtime/temporal_config.py now
    # refuses those itself, before connecting).
    target = TemporalTarget(address="h:1", namespace="default", tls=True, has_client_cert=True)
    err = explain(target, f"Failed client connect: tonic::transport::Error({core_says})")
    assert isinstance(err, InvalidInput)
    assert str(err) == message


async def test_the_api_key_reaches_the_server_and_a_wrong_one_is_refused(
    keyed_proxy: str, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_client_cert(monkeypatch, certs, certs.client)
    missing = await refusal(monkeypatch, keyed_proxy)
    assert str(missing) == f"Temporal at {keyed_proxy} requires an API key (TEMPORAL_API_KEY)"
    use(monkeypatch, API_KEY="a-wrong-key")
    wrong = await refusal(monkeypatch, keyed_proxy)
    assert str(wrong) == f"Temporal at {keyed_proxy} refused the API key (TEMPORAL_API_KEY)"
    use(monkeypatch, API_KEY=API_KEY)  # nginx answers Unauthenticated unless it is sent
    assert (await connect()).api_key == API_KEY


async def test_nothing_listening_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{server.getsockname()[1]}"
    err = await refusal(monkeypatch, address)
    assert isinstance(err, Unreachable)
    assert str(err).startswith(f"cannot reach Temporal at {address}: ")
