"""Where opsflow keeps its files and which Temporal it talks to (from the environment)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_UI_PORT = 8233
DEFAULT_TASK_QUEUE = "opsflow"


def opsflow_home() -> Path:
    """OPSFLOW_HOME, default ~/.opsflow: the dev server's database, logs, local instances."""
    return Path(os.environ.get("OPSFLOW_HOME") or Path.home() / ".opsflow").absolute()


def temporal_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS") or DEFAULT_TEMPORAL_ADDRESS


def task_queue() -> str:
    """OPSFLOW_TASK_QUEUE, default `opsflow`: where the worker polls and stacks start."""
    return os.environ.get("OPSFLOW_TASK_QUEUE") or DEFAULT_TASK_QUEUE


def temporal_namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE") or DEFAULT_NAMESPACE


def ui_url() -> str:
    """Where runs can be inspected: TEMPORAL_UI_URL, or the embedded dev server's UI."""
    return os.environ.get("TEMPORAL_UI_URL") or f"http://localhost:{DEFAULT_UI_PORT}"


def instances_dir() -> Path:
    return opsflow_home() / "instances"
