"""A secured Temporal for tests: certificates made with `cryptography`, and nginx as a
gRPC proxy in front of a dev server that requires a client certificate (mTLS).

nginx runs in the foreground with its own prefix, configuration, pid and logs under the
test's directory; /etc/nginx and the system service are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Above Temporal's long polls (about 60 s), so nginx never cuts a poll short.
PROXY_TIMEOUT = "300s"


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # signs `server` and `client`; nginx trusts client certificates it signed
    server: Pair  # for localhost and 127.0.0.1
    client: Pair
    stranger: Pair  # a client certificate signed by another CA: nginx refuses it
    other_ca: Path  # the CA of `stranger`; a client trusting it distrusts the server


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.with_suffix(".key").write_bytes(pem)


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )


def _ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (
        _builder(name, _name(name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(directory / name, cert, None)
    return cert, key


def _leaf(
    directory: Path,
    name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    usage: x509.ObjectIdentifier,
    server: bool = False,
) -> Pair:
    key = _key()
    builder = _builder(name, ca[0].subject, key).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )
    if server:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(IPv4Address("127.0.0.1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write(directory / name, builder.sign(ca[1], hashes.SHA256()), key)
    return Pair(directory / f"{name}.crt", directory / f"{name}.key")


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "test-ca")
    other = _ca(directory, "other-ca")
    return Certificates(
        ca=directory / "test-ca.crt",
        server=_leaf(directory, "server", ca, ExtendedKeyUsageOID.SERVER_AUTH, server=True),
        client=_leaf(directory, "client", ca, ExtendedKeyUsageOID.CLIENT_AUTH),
        stranger=_leaf(directory, "stranger", other, ExtendedKeyUsageOID.CLIENT_AUTH),
        other_ca=directory / "other-ca.crt",
    )


def clear_temporal_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TEMPORAL_* of the machine running the tests, and no profile file of its user:
    a test sees only the settings it gives."""
    for name in list(os.environ):
        if name.startswith("TEMPORAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _api_key_check(api_key: str | None) -> str:
    """What Temporal Cloud answers a wrong API key: gRPC status 16 (Unauthenticated)."""
    if api_key is None:
        return ""
    return f"""
            if ($http_authorization != "Bearer {api_key}") {{
                add_header grpc-status 16 always;
                add_header grpc-message "Request unauthorized" always;
                add_header content-type application/grpc always;
                return 200;
            }}"""


def _config(
    port: int, upstream: str, certs: Certificates, prefix: Path, api_key: str | None
) -> str:
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {certs.server.cert};
        ssl_certificate_key {certs.server.key};
        ssl_client_certificate {certs.ca};
        ssl_verify_client on;
        client_max_body_size 0;
        location / {{{_api_key_check(api_key)}
            grpc_pass grpc://{upstream};
            grpc_read_timeout {PROXY_TIMEOUT};
            grpc_send_timeout {PROXY_TIMEOUT};
        }}
    }}
}}
"""


@contextlib.contextmanager
def mtls_proxy(
    upstream: str, certs: Certificates, prefix: Path, api_key: str | None = None
) -> Iterator[str]:
    """nginx on a free 127.0.0.1 port requiring a client certificate signed by
    `certs.ca` (and, given `api_key`, that API key), passing gRPC to `upstream`
    (host:port); yields its address."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed: run scripts/bootstrap.sh (it installs it)")
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(_config(port, upstream, certs, prefix, api_key))
    with (prefix / "nginx.out").open("wb") as out:
        process = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, process, prefix)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(port: int, process: subprocess.Popen[bytes], prefix: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (prefix / "nginx.out").read_text() + (prefix / "error.log").read_text()
            pytest.fail(f"nginx exited ({process.returncode}):\n{log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port}")
