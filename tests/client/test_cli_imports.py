"""The CLI's import hygiene: `opsflow --help` loads neither Temporal nor the other heavy
libraries (they are imported inside the commands that use them)."""

from __future__ import annotations

import json
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
