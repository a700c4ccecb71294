"""The SSH keys of local instances, made with OpenSSH's own ssh-keygen: a host key for the
instance and the key the worker logs in with."""

from __future__ import annotations

import subprocess
from pathlib import Path


def keygen(key: Path) -> None:
    """An ed25519 key pair, made once; a half-made pair (a crash) is made again."""
    public = key.with_suffix(".pub")
    if key.exists() and public.exists():
        return
    key.unlink(missing_ok=True)
    public.unlink(missing_ok=True)
    check_call(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opsflow", "-f", str(key)])


def public_key(public_file: Path) -> str:
    """'ssh-ed25519 AAAA...' without the comment: the form SshEndpoint pins."""
    kind, blob, *_ = public_file.read_text().split()
    return f"{kind} {blob}"


def check_call(argv: list[str]) -> None:
    """Run a tool; RuntimeError with its own words when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")
