"""Where code comes from: a cookbooks or app source (directory, git, archive)."""

from __future__ import annotations

from pydantic import Field, model_validator

from opsflow.spec.fields import (
    PathText,
    StrictModel,
)


class CookbookSource(StrictModel):
    """Exactly one of: a local directory, a git repository (+ revision), a .tar.gz URL."""

    source: PathText | None = Field(
        default=None, description="directory of cookbooks, relative to the stack file"
    )
    git: PathText | None = Field(default=None, description="git repository URL (or path)")
    revision: str | None = Field(default=None, description="git branch, tag or commit")
    archive: PathText | None = Field(default=None, description="URL of a .tar.gz of cookbooks")
    path: PathText | None = Field(
        default=None, description="subdirectory of the repository or archive to use"
    )
    artifact: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="set by the CLI, not written by users: the sha256 of the `source` "
        "directory packed into the artifact store, which workers fetch it by (`source` "
        "stays, for display)",
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> CookbookSource:
        kinds = [k for k in ("source", "git", "archive") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "cookbooks: give exactly one of `source` (a directory), `git` (a repository, "
                f"with `revision`) or `archive` (a .tar.gz URL); got {kinds or 'none'}"
            )
        if self.artifact is not None and self.source is None:
            raise ValueError("cookbooks.artifact: only a `source` directory is packed")
        if self.revision is not None and self.git is None:
            raise ValueError("cookbooks.revision: only a `git` source has a revision")
        if self.path is not None and (self.path.startswith("/") or ".." in self.path.split("/")):
            raise ValueError(f"cookbooks.path: {self.path!r} must stay inside the source")
        return self

    @property
    def kind(self) -> str:
        return "git" if self.git is not None else "archive" if self.archive else "directory"

    def describe(self) -> str:
        if self.git is not None:
            return f"git {self.git} @ {self.revision or 'HEAD'}"
        if self.archive is not None:
            return f"archive {self.archive}"
        return f"directory {self.source}"
