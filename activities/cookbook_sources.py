"""Fetch a stack's cookbooks (or an app's code) and put them in the artifact store: a
directory the CLI packed (`artifact`), a local directory, a git repository or a .tar.gz.

A source with an `artifact` is taken from the artifact store by that digest into this
worker's tree cache (runtime/tree_cache.py), never read from its `source` path (a path on
the CLI's machine). A directory without one is used where it is. A git repository or an
archive is
fetched into a staging directory under `cookbooks_cache_dir()`, reduced to the tree the
stack uses (no `.git`; the `path` subdirectory when given), hashed with the recipe
runner's own `cookbooks_digest`, and renamed to `cookbooks_cache_dir()/<digest>`: an entry
is complete or absent, and the same content fetched twice (or from two sources) is one
entry. After a fetch, entries not used for CACHE_MAX_AGE are removed (best effort).

git runs with arguments as a list (no shell), `--` before every path and URL, no
terminal, no prompts (GIT_TERMINAL_PROMPT=0, stdin from /dev/null, a new session without
a controlling terminal, so neither git nor ssh can ask anything), no hooks, no `ext::`
transport, and a deadline. The clone is partial (`--filter=blob:none`, where the server
allows it) and not checked out; only the wanted revision is (a tag, a branch, a commit,
or the remote HEAD when none is given). A revision that is not a ref in the clone is
asked of the remote with `git fetch` (a commit only a pull request points at, say).
Submodules are not fetched.

An archive is downloaded with urllib (http, https, file), at most MAX_ARCHIVE_BYTES, and
must be a gzip-compressed tar. Every member is checked before anything is extracted (no
absolute path, no `..`, no link leading out, no device, fifo or other special file, at
most MAX_EXTRACTED_BYTES and MAX_MEMBERS in all), then extracted with tarfile's `data`
filter as a second line of defence. A single top-level directory (as in GitHub's
tarballs) is stripped.

What can go wrong (all ApplicationErrors whose message names the stack, the source and
the tool's own error line):
- ErrorType.COOKBOOKS_FETCH_FAILED, non-retryable: the directory does not exist, the
  repository does not exist or cannot be reached, the revision does not exist, git is not
  installed, an HTTP error status other than 408/429/5xx (404, 403, ...), a host that
  cannot be resolved or refuses the connection, an archive that is not a .tar.gz, is too
  big or has an unsafe member, a `path` that is not a directory in the source.
- ErrorType.COOKBOOKS_UNAVAILABLE, retryable: a timeout, a connection reset or closed
  mid-transfer, HTTP 408/429/5xx, git reporting a timeout, reset or RPC failure.
  (A separate type because the workflows list ErrorType.COOKBOOKS_FETCH_FAILED among the
  non-retryable error types, which overrides `non_retryable=False`.)
A cancelled activity kills git / stops the download and removes its staging directory.

Whatever the kind, the tree is then packed (runtime/packing.py) and put in the artifact
store, and ResolvedCookbooks.blob names it: a recipe run on any worker unpacks it from
there (activities/recipes/trees.py), so this worker's cache entries (see prune_cache) are
only a shortcut. A tree that cannot be packed (a link leading out of it) fails
non-retryably naming the link; an unavailable store is retryable. Each fetch records the
stack's reference to its blob and, at most daily, prunes the store
(runtime/artifact_pruning.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names
from activities.heartbeat import heartbeating

# The digest must be the runner's own: it names the staged cookbooks on instances.
from activities.recipes.payload import cookbooks_digest
from opsflow import settings
from opsflow.errors import ErrorType, InvalidInput, NotFound
from opsflow.messages import FetchCookbooksInput, ResolvedCookbooks
from opsflow.recipes import inventory as recipe_inventory
from opsflow.spec import ConfigurationManager, CookbookSource
from runtime import artifact_pruning, packing, tree_cache
from runtime.artifacts import ArtifactStore, StoreCorrupt, StoreUnavailable, shared_store
from runtime.cookbook_tree import read_tree

MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
MAX_EXTRACTED_BYTES = packing.MAX_EXTRACTED_BYTES
MAX_MEMBERS = packing.MAX_MEMBERS
CACHE_MAX_AGE = timedelta(days=7)
STAGING_MAX_AGE = timedelta(hours=1)
HEARTBEAT_SECONDS = 5.0
STAGING_PREFIX = ".staging-"

_DIGEST_NAME = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024
# Words in git's stderr that mean "try again later" rather than "this will never work".
_TRANSIENT_GIT = ("timed out", "connection reset", "rpc failed", "early eof")
_GIT_CONFIG = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "protocol.ext.allow=never",
    "-c", "advice.detachedHead=false",
    "-c", "credential.interactive=never",
)  # fmt: skip

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """How long and how much a fetch may take (tests use small ones)."""

    seconds: float = 600.0  # the whole fetch: every git command / the download
    socket_seconds: float = 60.0  # one network read or connect
    max_archive_bytes: int = MAX_ARCHIVE_BYTES
    max_extracted_bytes: int = MAX_EXTRACTED_BYTES
    max_members: int = MAX_MEMBERS


DEFAULT_LIMITS = Limits()


class FetchProblem(Exception):
    """What went wrong, in the tool's own words; `retryable` when trying again may help."""

    def __init__(self, detail: str, *, retryable: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


class FetchCancelled(Exception):
    """The activity was cancelled while the fetch ran."""


@dataclass(frozen=True)
class _Run:
    """The deadline and cancel flag of one fetch."""

    limits: Limits
    deadline: float
    cancel: threading.Event

    def check(self) -> None:
        if self.cancel.is_set():
            raise FetchCancelled()
        if time.monotonic() > self.deadline:
            raise FetchProblem(f"timed out after {self.limits.seconds:g} s", retryable=True)


# ---- the activity ------------------------------------------------------------------------


@activity.defn(name=names.FETCH_COOKBOOKS)
async def fetch_cookbooks(request: FetchCookbooksInput) -> ResolvedCookbooks:
    """Fetch the stack's cookbooks onto this worker (see the module docstring for errors)."""
    cancel = threading.Event()
    work = asyncio.to_thread(resolve, request, cancel=cancel)
    return await heartbeating(work, every=HEARTBEAT_SECONDS, at_once=True, stop=cancel)


# ---- the whole fetch (plain, synchronous) ------------------------------------------------


def resolve(
    request: FetchCookbooksInput,
    *,
    limits: Limits = DEFAULT_LIMITS,
    cancel: threading.Event | None = None,
    store: ArtifactStore | None = None,
) -> ResolvedCookbooks:
    """Fetch `request.source` (into the cache unless it is a directory, from the artifact
    store when it carries an `artifact`), describe it, and put the packed tree in `store`
    (default: the shared one) so any worker can run with it.

    Raises ApplicationError (types above) or FetchCancelled.
    """
    source = request.source
    run = _Run(limits, time.monotonic() + limits.seconds, cancel or threading.Event())
    try:
        with _store_problems():
            store = store or shared_store()
            directory, digest = _materialize(source, run, store)
            recipes = inventory(directory)
            if source.artifact is not None and source.path is None:
                blob = source.artifact  # the tree itself, as the CLI packed it
            else:
                blob = tree_cache.publish(store, directory)
            # What the stack now uses of this source: kept when the store is pruned.
            key = source.model_dump_json(exclude={"artifact"})
            artifact_pruning.record_reference(store, request.stack, key, blob)
    except FetchProblem as problem:
        raise _failure(request, problem) from problem
    prune_cache(keep=digest)
    tree_cache.prune()
    artifact_pruning.prune_if_due(store)
    return ResolvedCookbooks(
        directory=str(directory),
        digest=digest,
        description=source.describe(),
        recipes=recipes,
        blob=blob,
    )


@contextlib.contextmanager
def _store_problems() -> Iterator[None]:
    """The artifact store's errors as FetchProblems: unavailable is worth retrying; a
    missing or corrupt blob, or a tree that cannot be packed, is not."""
    try:
        yield
    except StoreUnavailable as err:
        raise FetchProblem(str(err), retryable=True) from err
    except (InvalidInput, StoreCorrupt) as err:  # NotFound is an InvalidInput
        raise FetchProblem(str(err)) from err
    except OSError as err:  # packing a tree this worker cannot read
        raise FetchProblem(f"cannot read {err.filename or 'the tree'}: {err.strerror}") from err


def _failure(request: FetchCookbooksInput, problem: FetchProblem) -> ApplicationError:
    message = (
        f"stack {request.stack}: cannot fetch cookbooks from "
        f"{request.source.describe()}: {problem.detail}"
    )
    if problem.retryable:
        return ApplicationError(message, type=ErrorType.COOKBOOKS_UNAVAILABLE)
    return ApplicationError(message, type=ErrorType.COOKBOOKS_FETCH_FAILED, non_retryable=True)


def _materialize(source: CookbookSource, run: _Run, store: ArtifactStore) -> tuple[Path, str]:
    """The cookbooks directory on this worker and its digest."""
    if source.artifact is not None:
        # Packed by the CLI: taken from the store, not from `source` (a path on the CLI's
        # machine), unless the blob is missing and `source` here packs to that very digest.
        tree = _artifact_tree(store, source.artifact, source.source)
        directory = subdirectory(tree, source.path)
        return directory, cookbooks_digest(str(directory))
    if source.source is not None:
        directory = subdirectory(_existing_directory(source.source), source.path)
        return directory, cookbooks_digest(str(directory))
    with _staging() as staging:
        if source.git is not None:
            tree = clone(source.git, source.revision, staging / "checkout", run)
        else:
            assert source.archive is not None
            archive = staging / "archive.tar.gz"
            download(source.archive, archive, run)
            tree = extract_tar_gz(archive, staging / "extract", run.limits)
        tree = subdirectory(tree, source.path)
        digest = cookbooks_digest(str(tree))
        return place_in_cache(tree, digest), digest


def _artifact_tree(store: ArtifactStore, artifact: str, source: str | None) -> Path:
    """The unpacked blob `artifact`. A blob not in the store (the spec loaded without one,
    as `load_stack_file` does for a plan) is put there from `source` when this worker has
    that directory and it packs to exactly `artifact`: the same content, by its digest."""
    try:
        return tree_cache.tree(store, artifact)
    except NotFound as missing:
        local = Path(source) if source is not None else None
        if local is None or not local.is_dir() or packing.tree_digest(local) != artifact:
            raise FetchProblem(
                f"{missing} (`opsflow stack apply` uploads it from the machine that has "
                "the directory)"
            ) from missing
        tree_cache.publish(store, local)
        return tree_cache.tree(store, artifact)


def _existing_directory(name: str) -> Path:
    directory = Path(name)
    if not directory.is_absolute():
        raise FetchProblem(f"{name} is not an absolute path")
    if not directory.is_dir():
        raise FetchProblem(f"directory {name} does not exist on this worker")
    return directory.resolve()


def subdirectory(root: Path, path: str | None) -> Path:
    """`root/path`, which must be a directory reached without following a symbolic link."""
    if path is None:
        return root
    parts = [part for part in PurePosixPath(path).parts if part != "."]
    if not parts or any(part in ("..", "/") for part in parts):
        raise FetchProblem(f"path {path!r} must name a subdirectory inside the source")
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise FetchProblem(f"path {path!r}: {part} is a symbolic link")
    if not current.is_dir():
        raise FetchProblem(f"path {path!r} is not a directory in the source")
    return current


def inventory(directory: Path) -> dict[ConfigurationManager, list[str]]:
    """Every recipe the tree provides, for each configuration manager (the loader's rule)."""
    try:
        tree = read_tree(directory)
    except OSError as err:
        raise FetchProblem(f"cannot read {err.filename or directory}: {err.strerror}") from err
    return {manager: sorted(found) for manager, found in recipe_inventory(tree).items()}


# ---- the cache -----------------------------------------------------------------------------


@dataclass
class _StagingDir:
    path: Path

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _staging() -> _StagingDir:
    """A fresh directory in the cache (same filesystem: renames are atomic); removed after."""
    cache = settings.cookbooks_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    return _StagingDir(Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=cache)))


def place_in_cache(tree: Path, digest: str) -> Path:
    """Rename `tree` (inside the cache's filesystem) to `cache/<digest>`; an existing entry
    with that digest is kept (same content) and `tree` is left for the caller to remove.
    Either way the entry's mtime is now: its age is the time since its last fetch."""
    entry = settings.cookbooks_cache_dir() / digest
    os.utime(tree)  # before it is visible: an archive's old mtimes would look stale
    for _ in range(3):
        try:
            tree.rename(entry)
            return entry
        except OSError:
            if not entry.is_dir():
                raise
        try:
            os.utime(entry)
            return entry
        except FileNotFoundError:
            continue  # pruned between the rename and now: place ours after all
    raise FetchProblem(f"cache entry {entry} keeps disappearing", retryable=True)


def prune_cache(
    *, keep: str | None = None, max_age: timedelta = CACHE_MAX_AGE, now: float | None = None
) -> list[Path]:
    """Remove cache entries (and abandoned staging directories) unused for `max_age`.

    An entry's last use is the later of its mtime (set by each fetch that produces it) and
    atime (a recipe run reading the tree refreshes it, at most daily with relatime).
    Best effort: errors are logged, never raised. Returns what was removed.
    """
    cache = settings.cookbooks_cache_dir()
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(cache.iterdir())
    except OSError:
        return removed
    for entry in entries:
        limit = _age_limit(entry.name, keep, max_age)
        stale = limit is not None and _unused_for(entry, now) > limit.total_seconds()
        if stale and _remove(entry):
            removed.append(entry)
    return removed


def _age_limit(name: str, keep: str | None, max_age: timedelta) -> timedelta | None:
    if name == keep:
        return None
    if _DIGEST_NAME.fullmatch(name):
        return max_age
    if name.startswith(STAGING_PREFIX):
        return min(max_age, STAGING_MAX_AGE)
    return None  # not ours


def _unused_for(entry: Path, now: float) -> float:
    try:
        info = entry.lstat()
    except OSError:
        return 0.0
    return now - max(info.st_mtime, info.st_atime)


def _remove(entry: Path) -> bool:
    """Rename aside first, so a reader finds the entry whole or not at all."""
    aside = entry.with_name(f"{STAGING_PREFIX}removed-{uuid.uuid4().hex}")
    try:
        entry.rename(aside)
        shutil.rmtree(aside)
    except OSError as error:
        _log.warning("could not remove cookbooks cache entry %s: %s", entry, error)
        return False
    return True


# ---- git ---------------------------------------------------------------------------------


def clone(url: str, revision: str | None, into: Path, run: _Run) -> Path:
    """Clone `url` into `into` (which must not exist), check out `revision` (default: the
    remote HEAD) detached, and drop `.git`. Returns `into`."""
    _check_argument("git URL", url)
    if revision is not None:
        _check_argument("revision", revision)
    _git(["clone", "--quiet", "--no-checkout", "--filter=blob:none", "--", url, str(into)], run)
    commit = _commit(into, revision or "HEAD", run)
    _git(["checkout", "--quiet", "--detach", commit, "--"], run, cwd=into)
    shutil.rmtree(into / ".git")
    return into


def _check_argument(what: str, value: str) -> None:
    if not value or value.startswith("-") or any(ord(c) < 32 for c in value):
        raise FetchProblem(f"{what} {value!r} is not acceptable (empty, control characters or -)")


def _commit(checkout: Path, revision: str, run: _Run) -> str:
    """The commit `revision` names: a ref or commit in the clone (a branch only the remote
    has is `origin/<branch>`), else whatever the remote gives for it."""
    for candidate in (revision, f"refs/remotes/origin/{revision}"):
        found = _rev_parse(checkout, candidate, run)
        if found is not None:
            return found
    try:
        _git(["fetch", "--quiet", "origin", revision], run, cwd=checkout)
    except FetchProblem as problem:
        problem.detail = f"revision {revision!r} not found: {problem.detail}"
        raise
    found = _rev_parse(checkout, "FETCH_HEAD", run)
    if found is None:
        raise FetchProblem(f"revision {revision!r} is not a commit")
    return found


def _rev_parse(checkout: Path, revision: str, run: _Run) -> str | None:
    argv = ["rev-parse", "--quiet", "--verify", "--end-of-options", f"{revision}^{{commit}}"]
    try:
        return _git(argv, run, cwd=checkout).strip()
    except FetchProblem as problem:
        if problem.retryable:
            raise
        return None


def _git(args: Sequence[str], run: _Run, *, cwd: Path | None = None) -> str:
    """Run git; its stdout, or FetchProblem with its own error line."""
    run.check()
    try:
        process = subprocess.Popen(
            ["git", *_GIT_CONFIG, *args],
            cwd=cwd,
            env=_git_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # no controlling terminal: nothing can prompt
        )
    except FileNotFoundError as error:
        raise FetchProblem("git is not installed on this worker") from error
    stdout, stderr = _wait(process, run, f"git {args[0]}")
    if process.returncode != 0:
        line = _error_line(stderr) or f"git {args[0]} exited with {process.returncode}"
        raise FetchProblem(line, retryable=any(w in line.lower() for w in _TRANSIENT_GIT))
    return stdout


def _git_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        GIT_TERMINAL_PROMPT="0",
        GCM_INTERACTIVE="never",
        SSH_ASKPASS_REQUIRE="never",
        LC_ALL="C",  # error lines in English, as reported to the user
    )
    return environment


def _wait(process: subprocess.Popen[str], run: _Run, what: str) -> tuple[str, str]:
    """Its output once it ends; killed (with its children) at the deadline or on cancel."""
    while True:
        try:
            return process.communicate(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
        try:
            run.check()
        except (FetchProblem, FetchCancelled) as stop:
            _kill(process)
            if isinstance(stop, FetchProblem):
                stop.detail = f"{what} {stop.detail}"
            raise


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _error_line(stderr: str) -> str:
    """git's `fatal:`/`error:` line (the last one), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (errors or lines or [""])[-1]


# ---- archives ------------------------------------------------------------------------------


def download(url: str, into: Path, run: _Run) -> None:
    """Download `url` (http, https or file) to the file `into`, at most max_archive_bytes."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise FetchProblem(f"unsupported URL scheme {scheme!r} (use https, http or file)")
    request = urllib.request.Request(url, headers={"User-Agent": "opsflow"})
    try:
        with urllib.request.urlopen(request, timeout=run.limits.socket_seconds) as response:
            _check_length(response.headers.get("Content-Length"), run.limits)
            with into.open("wb") as out:
                _copy(response, out, run)
    except urllib.error.HTTPError as error:
        error.close()
        retryable = error.code in (408, 429) or error.code >= 500
        raise FetchProblem(f"HTTP {error.code} {error.reason}", retryable=retryable) from error
    except urllib.error.URLError as error:
        raise _network_problem(error.reason) from error
    except (OSError, http.client.HTTPException) as error:
        raise _network_problem(error) from error


def _check_length(header: str | None, limits: Limits) -> None:
    if header is not None and header.isdigit() and int(header) > limits.max_archive_bytes:
        raise FetchProblem(f"archive is {header} bytes, more than {limits.max_archive_bytes}")


def _copy(response: http.client.HTTPResponse, out: BinaryIO, run: _Run) -> None:
    total = 0
    while chunk := response.read1(_CHUNK):  # what has arrived: cancel is noticed promptly
        total += len(chunk)
        if total > run.limits.max_archive_bytes:
            raise FetchProblem(f"archive is more than {run.limits.max_archive_bytes} bytes")
        out.write(chunk)
        run.check()


def _network_problem(reason: object) -> FetchProblem:
    """Timeouts and broken connections are worth retrying; unknown hosts, refusals not."""
    transient = (TimeoutError, ConnectionResetError, ConnectionAbortedError)
    closed = (http.client.RemoteDisconnected, http.client.IncompleteRead, BrokenPipeError)
    retryable = isinstance(reason, transient + closed)
    return FetchProblem(_describe(reason), retryable=retryable)


def _describe(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return f"{reason.strerror}" + (f": {reason.filename}" if reason.filename else "")
    return str(reason) or type(reason).__name__


def extract_tar_gz(archive: Path, into: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    """Extract the gzip-compressed tar `archive` into `into` after checking every member
    (runtime/packing.py's checks); the single top-level directory when there is exactly
    one, else `into`."""
    try:
        packing.extract(
            archive, into, max_bytes=limits.max_extracted_bytes, max_members=limits.max_members
        )
    except InvalidInput as error:
        raise FetchProblem(str(error)) from error
    entries = list(into.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return into
