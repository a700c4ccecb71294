"""The CLI's import hygiene: `opsflow --help` loads neither Temporal nor the other heavy
libraries (they are imported inside the commands that use them), and an offline
`stack plan` loads only what validating the file needs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("temporalio", "boto3", "botocore", "fabric", "paramiko", "rich", "pydantic")


def loaded_after(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The heavy top-level packages a fresh interpreter holds after running the CLI."""
    script = (
        "import json, sys\n"
        "from client.cli import cli\n"
        "try:\n"
        f"    cli.main({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    modules = set(json.loads(done.stderr.strip().splitlines()[-1]))
    return modules & set(HEAVY)


def test_help_imports_no_heavy_library() -> None:
    assert loaded_after(["--help"]) == set()


def test_a_groups_help_imports_no_heavy_library() -> None:
    assert loaded_after(["deploy", "--help"]) == set()


def test_an_offline_plan_imports_no_temporal(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{closed}", "OPSFLOW_HOME": str(tmp_path)}
    shop = str(REPO / "examples" / "shop" / "stack.yml")
    assert loaded_after(["stack", "plan", shop], env) == {"pydantic"}
