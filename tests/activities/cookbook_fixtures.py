"""Real cookbook sources for the fetch tests: git repositories, .tar.gz files, an HTTP server."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

V1 = {
    "README.md": "cookbooks for the shop\n",
    "web/setup.sh": "echo setting up v1\n",
    "web/deploy.sh": "echo deploying\n",
    "web/manifests/init.pp": "class web::init {}\n",
    "web/manifests/vhost.pp": "class web::vhost {}\n",
    "web/recipes/default.rb": "log 'v1'\n",
    "db/recipes/backup.rb": "log 'backup'\n",
    "web/templates/site.conf": "server {}\n",
    "site/db/setup.sh": "echo db\n",
}
V2 = {**V1, "web/setup.sh": "echo setting up v2\n"}

# What V1 provides (site/db/setup.sh is too deep to be a recipe, unless `path: site`).
SHELL_V1 = ["web::deploy", "web::setup"]
PUPPET_V1 = ["web::init", "web::vhost"]
CHEF_V1 = ["db::backup", "web::default"]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text) under `root`; `.sh` files are executable."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name.endswith(".sh"):
            path.chmod(0o755)
    return root


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo.parent),
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class Repo:
    path: Path
    v1: str  # commit shas
    v2: str


def make_repo(root: Path) -> Repo:
    """main: v1 (annotated tag `v1`, branch `stable`) then v2 (light tag `v2`)."""
    root.mkdir(parents=True)
    git(root, "init", "--quiet", "--initial-branch=main")
    # Serve partial clones over file:// as GitHub does over https.
    git(root, "config", "uploadpack.allowFilter", "true")
    write_tree(root, V1)
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "v1")
    git(root, "tag", "-a", "v1", "-m", "release 1")
    git(root, "branch", "stable")
    v1 = git(root, "rev-parse", "HEAD")
    write_tree(root, V2)
    git(root, "commit", "--quiet", "-am", "v2")
    git(root, "tag", "v2")
    return Repo(root, v1, git(root, "rev-parse", "HEAD"))


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A .tar.gz of exactly these members (any name, type or link, however unsafe)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str, text: str, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, text.encode()


def dir_member(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def link_member(name: str, target: str, *, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def tree_tar_gz(files: dict[str, str], top: str | None) -> bytes:
    """`files` as a .tar.gz, under the single directory `top` when given."""
    prefix = f"{top}/" if top else ""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [dir_member(top)] if top else []
    dirs = sorted({str(Path(name).parent) for name in files} - {"."})
    members += [dir_member(prefix + d) for d in dirs]
    members += [
        file_member(prefix + name, text, 0o755 if name.endswith(".sh") else 0o644)
        for name, text in files.items()
    ]
    return tar_gz(members)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ResettingHandler(SimpleHTTPRequestHandler):
    """Closes the connection without an answer (a reset, as far as the client knows)."""

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_server(directory: Path, *, resetting: bool = False) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving `directory`; yields its base URL."""

    class Handler(_ResettingHandler if resetting else _QuietHandler):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def slow_server(chunk: bytes, *, pause: float) -> Iterator[str]:
    """Answers every GET with 200 and then `chunk` every `pause` seconds, forever (or until
    the client goes): a download that never finishes."""
    stop = threading.Event()

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            try:
                while not stop.wait(pause):
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slow.tar.gz"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join()
