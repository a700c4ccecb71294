"""Where one run's files live on the instance (see the package docstring's tree)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

STATE_DIR = "var/lib/opsflow"


@dataclass(frozen=True)
class Layout:
    """Paths of one run on the instance."""

    root: str
    run_id: str
    digest: str
    app_digest: str | None = None  # the app code this run needs staged

    @property
    def state(self) -> str:
        return posixpath.join(self.root, STATE_DIR)

    @property
    def app_code(self) -> str | None:
        if self.app_digest is None:
            return None
        return posixpath.join(self.state, "apps", self.app_digest)

    @property
    def cookbooks(self) -> str:
        return posixpath.join(self.state, "cookbooks", self.digest)

    @property
    def runs(self) -> str:
        return posixpath.join(self.state, "runs")

    @property
    def run(self) -> str:
        return posixpath.join(self.runs, self.run_id)

    @property
    def tmp(self) -> str:
        return posixpath.join(self.state, "tmp")

    @property
    def users_state(self) -> str:
        """The stack users opsflow manages here (scripts/users.sh), root-only."""
        return posixpath.join(self.state, "users")

    @property
    def nap_fifo(self) -> str:
        return posixpath.join(self.state, "nap.fifo")

    def in_run(self, name: str) -> str:
        return posixpath.join(self.run, name)

    def tool_state(self, tool: str, name: str = "") -> str:
        """A private directory of puppet's or chef's, shared by this instance's runs only."""
        return posixpath.join(self.state, tool, name) if name else posixpath.join(self.state, tool)
