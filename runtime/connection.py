"""One way to reach Temporal, for the CLI, the worker and tests.

Where and how come from runtime/temporal_config.py (the SDK's environment configuration).
temporalio is imported by `connect`, not with this module: `answers` lets a command that
can do without Temporal (an offline `stack plan`) find out cheaply whether one is there.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from opsflow.errors import InvalidInput, OpsflowError, Unreachable
from runtime import temporal_config
from runtime.temporal_config import TemporalTarget

if TYPE_CHECKING:
    from temporalio.client import Client, Interceptor

PROBE_TIMEOUT = 1.0

# What the SDK's Rust core (rustls, tonic) says, in its own words, for each refusal.
_REFUSED_CLIENT_CERT = (
    "fatal alert: CertificateRequired",
    "fatal alert: BadCertificate",
    "fatal alert: UnknownCA",
    "fatal alert: UnsupportedCertificate",
    "fatal alert: CertificateUnknown",
    "fatal alert: CertificateExpired",
    "fatal alert: CertificateRevoked",
    "fatal alert: AccessDenied",
    "fatal alert: HandshakeFailure",
    # nginx's `ssl_verify_client on` completes the handshake, then answers 400.
    "400 Bad Request",
)
_SERVER_NOT_TRUSTED = "InvalidCertificate("
_WRONG_SERVER_NAME = "NotValidForName"
_NOT_TLS = "InvalidContentType"  # TLS on, the server answers in plain text
# TLS off, the server speaks TLS: it answers the HTTP/2 preface with a TLS alert, which
# the core reports as either of these (it varies from run to run).
_EXPECTS_TLS = ("FRAME_SIZE_ERROR", "h2 protocol error", '(Canceled, "connection closed")')
_UNAUTHENTICATED = ("code: Unauthenticated", "code: PermissionDenied")
# Checked before connecting (runtime/temporal_config.py); the core's words in case a PEM
# reads there and not here. The client's own certificate errors are not in a ConnectError.
_BAD_CERTIFICATE = ("NoCertificatesPresented", "Transport, InvalidCertificate(")
_BAD_KEY = ("PrivateKeyParseError", "failed to parse private key")
_KEY_MISMATCH = "InconsistentKeys"


async def connect(address: str | None = None, interceptors: Sequence[Interceptor] = ()) -> Client:
    """A client on the configured Temporal (or `address`) that carries pydantic models."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    target = temporal_config.load()
    if address:
        target = replace(target, address=address)
    try:
        return await Client.connect(
            **target.connect_kwargs(),
            data_converter=pydantic_data_converter,
            interceptors=interceptors,
        )
    except (RuntimeError, ValueError) as err:
        raise explain(target, str(err)) from None


def explain(target: TemporalTarget, failure: str) -> OpsflowError:
    """The failure of a connection to `target`, as the setting a user must look at."""
    if target.api_key:
        failure = failure.replace(target.api_key, "***")
    at = f"Temporal at {target.address}"
    cert = target.setting("TEMPORAL_TLS_CLIENT_CERT_PATH", "tls.client_cert_path")
    key = target.setting("TEMPORAL_TLS_CLIENT_KEY_PATH", "tls.client_key_path")
    if _any(_BAD_CERTIFICATE, failure):
        return InvalidInput(f"{cert}: the client certificate cannot be read as PEM")
    if _any(_BAD_KEY, failure):
        return InvalidInput(f"{key}: the private key cannot be read as PEM")
    if _KEY_MISMATCH in failure:
        return InvalidInput(f"{key}: not the private key of the client certificate ({cert})")
    if target.uses_tls and _any(_REFUSED_CLIENT_CERT, failure):
        why = (
            f"the client certificate ({cert}) was not accepted"
            if target.has_client_cert
            else f"a client certificate is required ({cert} / {key})"
        )
        return Unreachable(f"{at} refused the TLS handshake: {why}")
    if _WRONG_SERVER_NAME in failure:
        return Unreachable(
            f"{at}: its TLS certificate is not valid for the name asked for "
            f"(TEMPORAL_TLS_SERVER_NAME, or the host of TEMPORAL_ADDRESS)\n  {failure}"
        )
    if _SERVER_NOT_TRUSTED in failure:
        ca = target.setting("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "tls.server_ca_cert_path")
        return Unreachable(
            f"{at}: its TLS certificate is not trusted: not signed by the server CA "
            f"({ca}, or the system's CAs when unset)\n  {failure}"
        )
    if target.uses_tls and _NOT_TLS in failure:
        return Unreachable(f"{at} does not speak TLS: is TLS on there? (TEMPORAL_TLS=false)")
    if not target.uses_tls and _any(_EXPECTS_TLS, failure):
        return Unreachable(f"{at} broke off the connection: does it expect TLS? (TEMPORAL_TLS)")
    if _any(_UNAUTHENTICATED, failure):
        what = "refused the API key" if target.api_key else "requires an API key"
        return Unreachable(f"{at} {what} (TEMPORAL_API_KEY)")
    return Unreachable(
        f"cannot reach {at}: {failure}\n"
        "  start the embedded environment with `opsflow dev up`, "
        "or set TEMPORAL_ADDRESS to a running Temporal"
    )


def _any(needles: Sequence[str], text: str) -> bool:
    return any(needle in text for needle in needles)


def answers(address: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether anything accepts a TCP connection at `address` (default the configured
    one): False means Temporal is certainly not there; True still needs `connect`."""
    host, _, port = (address or temporal_config.address()).rpartition(":")
    if not host or not port.isdigit():
        return True  # not host:port: let connect say what is wrong with it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False
