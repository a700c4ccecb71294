"""Which Temporal to reach and how: the SDK's environment configuration, resolved.

`temporalio.envconfig` reads what the `temporal` CLI reads: TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_* and TEMPORAL_GRPC_META_*,
over a profile (TEMPORAL_PROFILE, default `default`) of a TOML file (TEMPORAL_CONFIG_FILE,
default ~/.config/temporalio/temporal.toml). Here its gaps become errors that name the
setting (a certificate path that does not exist, a TEMPORAL_TLS that is neither true nor
false, a profile that is not in the file), and what it leaves unset takes opsflow's
defaults (the embedded dev server, namespace `default`).

When no profile file is in play, `address` and `namespace` answer from the environment
alone, without importing temporalio: an offline `stack plan` stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opsflow import settings
from opsflow.errors import InvalidInput

if TYPE_CHECKING:
    from temporalio.envconfig import ClientConfigTLS, DataSource
    from temporalio.service import TLSConfig

TlsFile = Literal["server_ca_cert", "client_cert", "client_key"]
# The environment variable that sets each TLS file by path (its _DATA twin holds the PEM).
TLS_FILE_VARIABLES: dict[TlsFile, str] = {
    "server_ca_cert": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "client_cert": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "client_key": "TEMPORAL_TLS_CLIENT_KEY_PATH",
}
_TLS_VALUES = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class TemporalTarget:
    """A resolved connection: where, which namespace, and with what credentials.

    Its repr holds no secret (API key, private key, gRPC metadata), so it may be logged.
    """

    address: str
    namespace: str
    tls: bool | TLSConfig = field(repr=False)
    api_key: str | None = field(default=None, repr=False)
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)
    has_client_cert: bool = False
    # Where the settings came from: a profile of a file, or None (the environment alone).
    profile: str | None = None
    file: Path | None = None

    @property
    def uses_tls(self) -> bool:
        return self.tls is not False

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `temporalio.client.Client.connect`."""
        kwargs: dict[str, Any] = {
            "target_host": self.address,
            "namespace": self.namespace,
            "tls": self.tls,
        }
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key
        if self.rpc_metadata:
            kwargs["rpc_metadata"] = dict(self.rpc_metadata)
        return kwargs

    def setting(self, variable: str, profile_key: str) -> str:
        """How a user names a setting: the variable, and the profile key when a file is
        in play (`TEMPORAL_TLS_CLIENT_CERT_PATH or tls.client_cert_path of profile ...`)."""
        if self.file is None:
            return variable
        return f"{variable} or {profile_key} of profile {self.profile!r} in {self.file}"


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """TEMPORAL_* variables that are set; an empty one counts as unset, as every other
    opsflow setting does (the SDK would read TEMPORAL_TLS= as "TLS on")."""
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if k.startswith("TEMPORAL_") and v.strip()}


def default_config_file() -> Path:
    """Where the SDK and the `temporal` CLI look for profiles when TEMPORAL_CONFIG_FILE
    is unset."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg.startswith("/") else Path.home() / ".config"
    return base / "temporalio" / "temporal.toml"


def _config_file(env: Mapping[str, str]) -> Path | None:
    named = env.get("TEMPORAL_CONFIG_FILE")
    if named:
        path = Path(named)
        if not path.is_file():
            raise InvalidInput(f"TEMPORAL_CONFIG_FILE: {named} does not exist or is not a file")
        return path
    default = default_config_file()
    return default if default.is_file() else None


def _profile_in_play(env: Mapping[str, str]) -> bool:
    return "TEMPORAL_PROFILE" in env or _config_file(env) is not None


def address() -> str:
    """The address a connection would use (host:port)."""
    if not _profile_in_play(_environment(None)):
        return settings.temporal_address()
    return load().address


def namespace() -> str:
    """The namespace a connection would use."""
    if not _profile_in_play(_environment(None)):
        return settings.temporal_namespace()
    return load().namespace


def load(env: Mapping[str, str] | None = None) -> TemporalTarget:
    """The connection the environment (`env`, default os.environ) and its profile ask for;
    InvalidInput naming the setting or file when they cannot be used."""
    from temporalio.envconfig import ClientConfigProfile

    found = _environment(env)
    tls_flag = found.get("TEMPORAL_TLS")
    if tls_flag is not None and tls_flag.strip().lower() not in _TLS_VALUES:
        raise InvalidInput(f"TEMPORAL_TLS must be true or false, not {tls_flag!r}")
    file = _config_file(found)
    profile_name = found.get("TEMPORAL_PROFILE") or "default"
    if file is None and "TEMPORAL_PROFILE" in found:
        raise InvalidInput(
            f"TEMPORAL_PROFILE={profile_name!r}: there is no profile file to read it from "
            f"(set TEMPORAL_CONFIG_FILE, or write {default_config_file()})"
        )
    try:
        profile = ClientConfigProfile.load(
            profile_name if file is not None else None,
            config_source=file,
            disable_file=file is None,
            override_env_vars=found,
        )
    except RuntimeError as err:  # the core's ConfigError
        # The core's words: a TOML parse error with line and column, an unknown profile,
        # or a variable set both as _PATH and _DATA.
        where = file if file is not None else "the TEMPORAL_* environment"
        hint = " (TEMPORAL_PROFILE)" if "not found" in str(err) else ""
        raise InvalidInput(f"{where}: {str(err).strip()}{hint}") from None
    base = TemporalTarget(
        address=profile.address or f"localhost:{settings.dev_port()}",
        namespace=profile.namespace or settings.DEFAULT_NAMESPACE,
        tls=False,
        profile=profile_name if file is not None else None,
        file=file,
    )
    tls: bool | TLSConfig = profile.api_key is not None  # the SDK's rule: a key means TLS
    if profile.tls is not None:
        tls = _tls_config(base, profile.tls)
    return TemporalTarget(
        address=base.address,
        namespace=base.namespace,
        tls=tls,
        api_key=profile.api_key,
        rpc_metadata=dict(profile.grpc_meta),
        has_client_cert=profile.tls is not None and profile.tls.client_cert is not None,
        profile=base.profile,
        file=base.file,
    )


def _tls_config(base: TemporalTarget, tls: ClientConfigTLS) -> bool | TLSConfig:
    from temporalio.service import TLSConfig

    if tls.disabled is True:
        return False
    if (tls.client_cert is None) != (tls.client_private_key is None):
        raise InvalidInput(
            "a client certificate needs its private key and the key its certificate: set "
            f"both {_named(base, 'client_cert')} and {_named(base, 'client_key')}"
        )
    return TLSConfig(
        domain=tls.server_name,
        server_root_ca_cert=_read(base, "server_ca_cert", tls.server_root_ca_cert),
        client_cert=_read(base, "client_cert", tls.client_cert),
        client_private_key=_read(base, "client_key", tls.client_private_key),
    )


def _named(base: TemporalTarget, which: TlsFile, data: bool = False) -> str:
    if data:
        return base.setting(TLS_FILE_VARIABLES[which][: -len("PATH")] + "DATA", f"tls.{which}_data")
    return base.setting(TLS_FILE_VARIABLES[which], f"tls.{which}_path")


def _read(base: TemporalTarget, which: TlsFile, source: DataSource | None) -> bytes | None:
    """The PEM text of a TLS file, checked to hold what it must: the core would take a
    CA file without a certificate as "no CA" and report an untrusted server instead."""
    if source is None:
        return None
    if isinstance(source, str | bytes):
        pem = source.encode() if isinstance(source, str) else source
        where = _named(base, which, data=True)
    else:
        try:
            pem = source.read_bytes()
        except FileNotFoundError:
            problem = "does not exist"
        except IsADirectoryError:
            problem = "is a directory, not a PEM file"
        except OSError as err:
            problem = f"cannot be read ({err.strerror})"
        else:
            problem = ""
        if problem:
            raise InvalidInput(f"{_named(base, which)}: {source} {problem}")
        where = f"{_named(base, which)}: {source}"
    problem = _pem_problem(which, pem)
    if problem:
        raise InvalidInput(f"{where} {problem}")
    return pem


def _pem_problem(which: TlsFile, pem: bytes) -> str:
    """What keeps `pem` from being the certificate or key it must be; "" when nothing."""
    # Here, not at the top: cryptography is paid only when TLS files are given.
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if which == "client_key":
        if b"PRIVATE KEY-----" not in pem:
            return "holds no PEM private key"
        try:
            load_pem_private_key(pem, password=None)
        except TypeError:
            return "holds an encrypted private key: Temporal's client needs it unencrypted"
        except ValueError:
            return "holds a PEM private key that cannot be read"
        return ""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        return "holds no PEM certificate"
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        return "holds a PEM certificate that cannot be read"
    return ""
