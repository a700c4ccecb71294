"""Where opsflow keeps its files and which Temporal it talks to (from the environment;
profiles, TLS and API keys are resolved in runtime/temporal_config.py)."""

from __future__ import annotations

import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path

from opsflow.errors import InvalidInput

DEFAULT_DEV_PORT = 7233
DEFAULT_NAMESPACE = "default"
DEFAULT_UI_PORT = 8233
DEFAULT_TASK_QUEUE = "opsflow"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def opsflow_home() -> Path:
    """OPSFLOW_HOME, default ~/.opsflow: the dev server's database, logs, local instances."""
    return Path(os.environ.get("OPSFLOW_HOME") or Path.home() / ".opsflow").absolute()


def _port(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise InvalidInput(f"{name} must be a port number, not {value!r}")
    return int(value)


def dev_port() -> int:
    """OPSFLOW_DEV_PORT, default 7233: the embedded dev server's gRPC port."""
    return _port("OPSFLOW_DEV_PORT", DEFAULT_DEV_PORT)


def ui_port() -> int:
    """OPSFLOW_UI_PORT, default 8233: the embedded dev server's UI port."""
    return _port("OPSFLOW_UI_PORT", DEFAULT_UI_PORT)


def temporal_address() -> str:
    """TEMPORAL_ADDRESS, or the embedded dev server: the environment's part alone.
    runtime/temporal_config.py resolves the whole (a profile file, TLS, API key)."""
    return os.environ.get("TEMPORAL_ADDRESS") or f"localhost:{dev_port()}"


def task_queue() -> str:
    """OPSFLOW_TASK_QUEUE, default `opsflow`: where the worker polls and stacks start."""
    return os.environ.get("OPSFLOW_TASK_QUEUE") or DEFAULT_TASK_QUEUE


def worker_id() -> str:
    """OPSFLOW_WORKER_ID, else the id in `opsflow_home()/worker.id`, written once.

    Stable per OPSFLOW_HOME: a restarted worker on the same machine is the same worker and
    serves the local instances its predecessor launched (their files are in that home).
    """
    value = (os.environ.get("OPSFLOW_WORKER_ID") or "").strip()
    if value:
        if not _WORKER_ID.fullmatch(value):
            raise InvalidInput(
                f"OPSFLOW_WORKER_ID: {value!r} must be 1-64 of A-Z a-z 0-9 . _ - "
                "(starting with a letter or digit)"
            )
        return value
    path = opsflow_home() / "worker.id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".worker.id.{os.getpid()}.{os.urandom(4).hex()}")
        temp.write_text(os.urandom(6).hex() + "\n")
        try:
            os.link(temp, path)  # fails if another process published first: its id wins
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    found = path.read_text().strip()
    if not _WORKER_ID.fullmatch(found):
        raise InvalidInput(f"{path} does not hold a worker id: delete it or set OPSFLOW_WORKER_ID")
    return found


def worker_queue(queue: str, worker: str) -> str:
    """The task queue only worker `worker` polls, beside the shared queue; `queue` is
    either (an activity knows the one it runs on)."""
    return f"{queue.split('@', 1)[0]}@{worker}"


def temporal_namespace() -> str:
    """TEMPORAL_NAMESPACE, default `default` (a profile's: runtime/temporal_config.py)."""
    return os.environ.get("TEMPORAL_NAMESPACE") or DEFAULT_NAMESPACE


def ui_url() -> str:
    """Where runs can be inspected: TEMPORAL_UI_URL, or the embedded dev server's UI."""
    return os.environ.get("TEMPORAL_UI_URL") or f"http://localhost:{ui_port()}"


def instances_dir() -> Path:
    return opsflow_home() / "instances"


class Isolation(StrEnum):
    """How a local instance is made (OPSFLOW_ISOLATION)."""

    AUTO = "auto"  # an isolated machine where this host allows one, else a process
    MACHINE = "machine"  # an isolated machine, or the launch fails saying why
    NONE = "none"  # an sshd process on 127.0.0.1 sharing this host's files (lighter)


def isolation() -> Isolation:
    """OPSFLOW_ISOLATION, default `auto`."""
    value = (os.environ.get("OPSFLOW_ISOLATION") or Isolation.AUTO.value).strip()
    try:
        return Isolation(value)
    except ValueError:
        choices = ", ".join(i.value for i in Isolation)
        raise InvalidInput(f"OPSFLOW_ISOLATION: {value!r} must be one of {choices}") from None


DEFAULT_NETWORK = "10.213.0.0/23"
# At least 250 machines (the bridge takes the first address), at most a /16.
_NETWORK_PREFIXES = range(16, 25)


def local_network() -> ipaddress.IPv4Network:
    """OPSFLOW_NETWORK, default 10.213.0.0/23: the IPv4 subnet of this home's isolated
    local instances (the bridge holds its first address, the machines the others). Give
    each OPSFLOW_HOME on one host its own (parallel test runs do)."""
    value = (os.environ.get("OPSFLOW_NETWORK") or DEFAULT_NETWORK).strip()
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        raise InvalidInput(
            f"OPSFLOW_NETWORK: {value!r} is not an IPv4 subnet such as {DEFAULT_NETWORK} ({err})"
        ) from None
    if network.prefixlen not in _NETWORK_PREFIXES:
        raise InvalidInput(
            f"OPSFLOW_NETWORK: {value!r} must be a /16 to /24 (room for at least 250 "
            "machines and the bridge)"
        )
    if not network.is_private or network.is_loopback or network.is_link_local:
        raise InvalidInput(
            f"OPSFLOW_NETWORK: {value!r} must be a private range (10/8, 172.16/12, "
            "192.168/16): the machines are on this host only"
        )
    return network


def cookbooks_cache_dir() -> Path:
    """Fetched cookbooks (git, archives), one directory per content hash."""
    return opsflow_home() / "cookbooks"


def artifacts_location() -> str:
    """OPSFLOW_ARTIFACTS: where the artifact store is (see runtime/artifacts.py).

    Unset: `$OPSFLOW_HOME/artifacts` (the embedded default, one machine). An absolute path:
    a directory every machine mounts. `s3://bucket/prefix`: an S3 API through boto3's
    standard configuration (AWS_ENDPOINT_URL for MinIO, Ceph, moto). Returned normalised
    (a path absolute and without a trailing slash, an S3 URL without one), so two
    machines that name the same store give the same text.
    """
    value = (os.environ.get("OPSFLOW_ARTIFACTS") or "").strip()
    if not value:
        return str(opsflow_home() / "artifacts")
    if value.startswith("s3://"):
        bucket, _, prefix = value[len("s3://") :].partition("/")
        if not bucket or not _BUCKET.fullmatch(bucket):
            raise InvalidInput(
                f"OPSFLOW_ARTIFACTS: {value!r} does not name an S3 bucket "
                "(s3://bucket or s3://bucket/prefix, the bucket 3-63 of a-z 0-9 . -)"
            )
        prefix = prefix.strip("/")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if "://" in value:
        raise InvalidInput(
            f"OPSFLOW_ARTIFACTS: {value!r} is neither an absolute path nor s3://bucket/prefix"
        )
    if not value.startswith("/"):
        raise InvalidInput(
            f"OPSFLOW_ARTIFACTS: {value!r} must be an absolute path (every machine must "
            "name the same directory) or s3://bucket/prefix"
        )
    return os.path.normpath(value)


def run_logs_dir() -> Path:
    """Full logs of recipe runs, per stack and instance (the newest 30 kept)."""
    return opsflow_home() / "logs" / "runs"


def secret_key() -> bytes:
    """The secret key that decrypts secure values (see opsflow.secrets): a worker's.

    OPSFLOW_SECRET_KEY (from `opsflow.secrets.new_key()`) if set, else the key in
    `opsflow_home()/secret.key`, created readable by its owner only on first use. Workers
    that share a store must share this key; a CLI needs only its public key, which the
    workers publish in the store (runtime/sealing.py).
    """
    key = local_secret_key()
    if key is not None:
        return key
    path = _key_path()
    # Write a complete private file under a unique name, then publish it with link(),
    # which (unlike rename) fails if another process published first: then both use
    # the key that won.
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".secret.key.{os.getpid()}.{os.urandom(4).hex()}")
    from opsflow.secrets import new_key

    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(new_key() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links: rename, a smaller window
            if not path.exists():
                os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    found = local_secret_key()
    assert found is not None
    return found


def local_secret_key() -> bytes | None:
    """OPSFLOW_SECRET_KEY, or the key in `opsflow_home()/secret.key` if that file exists;
    None without either (never creates one: a CLI then seals with the published key)."""
    # Here, not at the top: cryptography and pydantic are not paid by every settings user.
    from opsflow.secrets import valid_key

    value = os.environ.get("OPSFLOW_SECRET_KEY")
    if value:
        key = value.strip().encode()
        if not valid_key(key):
            raise InvalidInput(
                "OPSFLOW_SECRET_KEY is not a valid key: it must be 32 url-safe base64-encoded "
                "bytes, as printed by "
                '`python -c "from opsflow.secrets import new_key; print(new_key().decode())"`'
            )
        return key
    path = _key_path()
    if not path.exists():
        return None
    key = path.read_bytes().strip()
    if not valid_key(key):
        raise InvalidInput(f"{path} does not hold a valid key: delete it or set OPSFLOW_SECRET_KEY")
    return key


def _key_path() -> Path:
    return opsflow_home() / "secret.key"
