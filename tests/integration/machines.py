"""Processes that act as other machines: each in a mount namespace of its own where the
other machines' directories are hidden under an empty, read-only tmpfs.

`unshare --mount --propagation private` gives the process a private copy of the mount
table, so the tmpfs mounts made in it are seen by nothing else and vanish with the
namespace when its last process exits (a SIGKILL included): nothing to clean up on the
host. The process shares the network, so it still reaches Temporal, the store and the
sshds of the test, as machines on one network do.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# Mount an empty read-only tmpfs over each directory named before `--`, then exec the rest.
_HIDE_THEN_EXEC = """
set -e
while [ "$1" != -- ]; do
    mount -t tmpfs -o ro,size=4k,mode=0555 opsflow-hidden "$1"
    shift
done
shift
exec "$@"
"""


def namespaces_work() -> bool:
    """Whether this process may make mount namespaces (root, unshare present)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    return probe.returncode == 0


def on_another_machine(argv: Sequence[str], hidden: Sequence[Path]) -> list[str]:
    """`argv` as run on a machine that cannot see `hidden` (each must be a directory)."""
    for path in hidden:
        if not path.is_dir():
            raise ValueError(f"{path} must be an existing directory to be hidden")
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _HIDE_THEN_EXEC,
        "sh",
        *[str(p) for p in hidden],
        "--",
        *argv,
    ]


def start(
    argv: Sequence[str],
    hidden: Sequence[Path],
    env: Mapping[str, str],
    log: Path,
    cwd: Path,
) -> subprocess.Popen[bytes]:
    """Start `argv` on another machine (its own session: a test can SIGKILL its group)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            on_another_machine(argv, hidden),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
