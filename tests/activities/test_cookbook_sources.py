"""Fetching cookbooks from real sources: a git repository, .tar.gz files over real HTTP."""

from __future__ import annotations

import asyncio
import os
import shutil
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from activities import cookbook_sources
from activities.cookbook_sources import (
    Limits,
    fetch_cookbooks,
    prune_cache,
    resolve,
)
from activities.recipes.payload import cookbooks_digest
from opsflow.errors import ErrorType
from opsflow.messages import FetchCookbooksInput, ResolvedCookbooks
from opsflow.spec import ConfigurationManager, CookbookSource
from runtime import tree_cache
from runtime.artifacts import open_store
from runtime.packing import tree_digest
from tests.activities.cookbook_fixtures import (
    CHEF_V1,
    PUPPET_V1,
    SHELL_V1,
    V1,
    V2,
    Repo,
    dir_member,
    file_member,
    http_server,
    link_member,
    make_repo,
    slow_server,
    tar_gz,
    tree_tar_gz,
    write_tree,
)

STACK = "shop"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "opsflow home"  # a space: paths go to git as arguments, never a shell
    monkeypatch.setenv("OPSFLOW_HOME", str(path))
    return path


@pytest.fixture
def cache(home: Path) -> Path:
    return home / "cookbooks"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over real HTTP, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    with http_server(root) as url:
        yield root, url


def request(**source: str) -> FetchCookbooksInput:
    return FetchCookbooksInput(stack=STACK, source=CookbookSource.model_validate(source))


def fetch(**source: str) -> ResolvedCookbooks:
    return resolve(request(**source))


def failure(**source: str) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        fetch(**source)
    return caught.value


def digest_of(tmp_path: Path, files: dict[str, str]) -> str:
    """The recipe runner's digest of `files` written as a plain tree."""
    return cookbooks_digest(
        str(write_tree(tmp_path / f"expected-{len(os.listdir(tmp_path))}", files))
    )


def read_tree(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): p.read_text()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def assert_non_retryable(error: ApplicationError, *words: str) -> None:
    assert error.type == ErrorType.COOKBOOKS_FETCH_FAILED
    assert error.non_retryable
    assert f"stack {STACK}" in error.message
    for word in words:
        assert word in error.message


def assert_clean(cache: Path) -> None:
    """No entry, no staging directory left behind."""
    assert not cache.exists() or list(cache.iterdir()) == []


# ---- git ----------------------------------------------------------------------------------


def test_git_tag_commit_branch_and_head(repo: Repo, tmp_path: Path, cache: Path) -> None:
    by_tag = fetch(git=str(repo.path), revision="v1")  # an annotated tag
    by_sha = fetch(git=str(repo.path), revision=repo.v1)
    by_short_sha = fetch(git=str(repo.path), revision=repo.v1[:10])
    by_branch = fetch(git=str(repo.path), revision="stable")  # only the remote has it
    by_head = fetch(git=str(repo.path))
    by_main = fetch(git=str(repo.path), revision="main")

    assert read_tree(Path(by_tag.directory)) == V1
    assert by_tag == by_sha.model_copy(update={"description": by_tag.description})
    assert by_sha.directory == by_short_sha.directory == by_branch.directory == by_tag.directory
    assert read_tree(Path(by_head.directory)) == V2
    assert by_head.digest == by_main.digest != by_tag.digest
    assert by_tag.digest == digest_of(tmp_path, V1)
    assert by_head.digest == digest_of(tmp_path, V2)
    assert Path(by_tag.directory) == cache / by_tag.digest
    assert not (Path(by_tag.directory) / ".git").exists()
    assert by_tag.description == f"git {repo.path} @ v1"
    assert by_head.description == f"git {repo.path} @ HEAD"
    assert sorted(p.name for p in cache.iterdir()) == sorted({by_tag.digest, by_head.digest})


def test_git_file_url_partial_clone(repo: Repo, tmp_path: Path) -> None:
    resolved = fetch(git=f"file://{repo.path}", revision="v2")
    assert read_tree(Path(resolved.directory)) == V2
    assert resolved.digest == digest_of(tmp_path, V2)


def test_git_path_subdirectory(repo: Repo, tmp_path: Path) -> None:
    resolved = fetch(git=str(repo.path), revision="v1", path="site")
    assert read_tree(Path(resolved.directory)) == {"db/setup.sh": "echo db\n"}
    assert resolved.digest == digest_of(tmp_path, {"db/setup.sh": "echo db\n"})
    assert resolved.recipes[ConfigurationManager.SHELL] == ["db::setup"]


def test_git_revision_that_does_not_exist(repo: Repo, cache: Path) -> None:
    error = failure(git=str(repo.path), revision="v9")
    assert_non_retryable(
        error, f"git {repo.path} @ v9", "revision 'v9' not found", "couldn't find remote ref v9"
    )
    assert_clean(cache)


def test_git_repository_that_does_not_exist(tmp_path: Path, cache: Path) -> None:
    missing = tmp_path / "nowhere"
    error = failure(git=str(missing), revision="main")
    assert_non_retryable(error, f"repository '{missing}' does not exist")
    assert_clean(cache)


def test_git_unreachable_server(cache: Path) -> None:
    error = failure(git="http://127.0.0.1:1/cookbooks.git")
    assert_non_retryable(error, "unable to access", "127.0.0.1 port 1")


def test_git_refuses_option_like_arguments(repo: Repo, cache: Path) -> None:
    assert_non_retryable(failure(git="--upload-pack=touch /tmp/x"), "not acceptable")
    assert_non_retryable(failure(git=str(repo.path), revision="--output=x"), "not acceptable")
    assert_clean(cache)


def test_path_that_is_not_in_the_source(repo: Repo, cache: Path) -> None:
    error = failure(git=str(repo.path), revision="v1", path="nope/cookbooks")
    assert_non_retryable(error, "path 'nope/cookbooks' is not a directory in the source")
    assert_clean(cache)


def test_path_through_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "cookbooks", {"web/setup.sh": "true\n"})
    (top / "elsewhere").symlink_to(tmp_path)
    error = failure(source=str(top), path="elsewhere/cookbooks")
    assert_non_retryable(error, "elsewhere is a symbolic link")


def test_git_that_hangs_is_killed_at_the_deadline_retryable(cache: Path) -> None:
    with slow_server(b"x", pause=0.1) as url, pytest.raises(ApplicationError) as caught:
        resolve(request(git=url), limits=Limits(seconds=1.0))
    assert caught.value.type == ErrorType.COOKBOOKS_UNAVAILABLE
    assert not caught.value.non_retryable
    assert "git clone timed out after 1 s" in caught.value.message
    assert_clean(cache)


# ---- archives -----------------------------------------------------------------------------


def test_archive_over_http_with_a_top_level_directory(
    served: tuple[Path, str], repo: Repo, cache: Path, tmp_path: Path
) -> None:
    root, url = served
    (root / "shop-v1.tar.gz").write_bytes(tree_tar_gz(V1, top="shop-cookbooks-1a2b3c"))

    resolved = fetch(archive=f"{url}/shop-v1.tar.gz")

    assert read_tree(Path(resolved.directory)) == V1
    assert resolved.digest == digest_of(tmp_path, V1)
    assert Path(resolved.directory) == cache / resolved.digest
    assert resolved.description == f"archive {url}/shop-v1.tar.gz"
    # The same content from git is the same cache entry.
    assert fetch(git=str(repo.path), revision="v1").directory == resolved.directory
    # A fresh entry even though the archive's directories carry old mtimes.
    assert time.time() - Path(resolved.directory).stat().st_mtime < 60


def test_archive_without_a_top_level_directory_and_path(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    root, url = served
    (root / "flat.tar.gz").write_bytes(tree_tar_gz(V1, top=None))
    flat = fetch(archive=f"{url}/flat.tar.gz")
    assert read_tree(Path(flat.directory)) == V1
    assert flat.digest == digest_of(tmp_path, V1)
    site = fetch(archive=f"{url}/flat.tar.gz", path="site")
    assert read_tree(Path(site.directory)) == {"db/setup.sh": "echo db\n"}


def test_archive_from_a_file_url(tmp_path: Path) -> None:
    archive = tmp_path / "cookbooks.tar.gz"
    archive.write_bytes(tree_tar_gz(V2, top="cookbooks"))
    resolved = fetch(archive=archive.as_uri())
    assert resolved.digest == digest_of(tmp_path, V2)


def test_text_served_as_tar_gz(served: tuple[Path, str], cache: Path) -> None:
    root, url = served
    (root / "cookbooks.tar.gz").write_text("<html>not found, really</html>\n")
    error = failure(archive=f"{url}/cookbooks.tar.gz")
    assert_non_retryable(error, "not a .tar.gz archive: not a gzip file")
    assert_clean(cache)


def test_gzip_that_is_not_a_tar(served: tuple[Path, str], cache: Path) -> None:
    import gzip

    root, url = served
    (root / "cookbooks.tar.gz").write_bytes(gzip.compress(b"just some text\n" * 100))
    error = failure(archive=f"{url}/cookbooks.tar.gz")
    assert_non_retryable(error, "not a .tar.gz archive:")
    assert_clean(cache)


def test_http_404(served: tuple[Path, str], cache: Path) -> None:
    _, url = served
    error = failure(archive=f"{url}/missing.tar.gz")
    assert_non_retryable(error, f"archive {url}/missing.tar.gz", "HTTP 404")
    assert_clean(cache)


def test_missing_file_url_and_bad_scheme(tmp_path: Path) -> None:
    missing = tmp_path / "missing.tar.gz"
    assert_non_retryable(failure(archive=missing.as_uri()), "No such file or directory")
    assert_non_retryable(failure(archive="ftp://example.com/x.tar.gz"), "unsupported URL scheme")


def test_connection_closed_without_answer_is_retryable(tmp_path: Path, cache: Path) -> None:
    with http_server(tmp_path, resetting=True) as url, pytest.raises(ApplicationError) as caught:
        fetch(archive=f"{url}/cookbooks.tar.gz")
    assert caught.value.type == ErrorType.COOKBOOKS_UNAVAILABLE
    assert not caught.value.non_retryable
    assert "stack shop" in caught.value.message
    assert_clean(cache)


def test_stalled_download_times_out_retryable(cache: Path) -> None:
    with slow_server(b"x", pause=5.0) as url, pytest.raises(ApplicationError) as caught:
        resolve(request(archive=url), limits=Limits(socket_seconds=0.3))
    assert caught.value.type == ErrorType.COOKBOOKS_UNAVAILABLE
    assert "timed out" in caught.value.message
    assert_clean(cache)


def test_archive_too_big(served: tuple[Path, str], cache: Path) -> None:
    root, url = served
    (root / "big.tar.gz").write_bytes(os.urandom(4096))
    with pytest.raises(ApplicationError) as caught:
        resolve(request(archive=f"{url}/big.tar.gz"), limits=Limits(max_archive_bytes=1000))
    assert_non_retryable(caught.value, "4096 bytes, more than 1000")
    assert_clean(cache)


Member = tuple[tarfile.TarInfo, bytes | None]
UNSAFE: dict[str, list[Member]] = {
    "parent": [dir_member("top"), file_member("top/../../../../../evil", "pwned\n")],
    "absolute": [file_member("/tmp/opsflow-evil-absolute", "pwned\n")],
    "symlink out": [
        dir_member("top"),
        link_member("top/link", "../../.."),
        file_member("top/link/evil", "pwned\n"),
    ],
    "absolute symlink": [link_member("etc", "/etc"), file_member("etc/evil", "pwned\n")],
    "hard link out": [link_member("passwd", "../../etc/passwd", hard=True)],
}


@pytest.mark.parametrize("kind", list(UNSAFE))
def test_unsafe_archive_members_are_refused(
    kind: str, served: tuple[Path, str], tmp_path: Path, cache: Path
) -> None:
    root, url = served
    (root / "evil.tar.gz").write_bytes(
        tar_gz([file_member("ok/web/setup.sh", "echo ok\n"), *UNSAFE[kind]])
    )
    before = files_under(tmp_path)

    error = failure(archive=f"{url}/evil.tar.gz")

    assert_non_retryable(error, "unsafe archive member")
    assert not Path("/tmp/opsflow-evil-absolute").exists()
    assert files_under(tmp_path) == before
    assert_clean(cache)


def files_under(top: Path) -> list[Path]:
    return sorted(p for p in top.rglob("*") if not p.is_dir())


def test_device_member_is_refused(served: tuple[Path, str], cache: Path) -> None:
    root, url = served
    info = tarfile.TarInfo("null")
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    (root / "dev.tar.gz").write_bytes(tar_gz([(info, None)]))
    assert_non_retryable(failure(archive=f"{url}/dev.tar.gz"), "a device, fifo or special")
    assert_clean(cache)


def test_links_inside_the_archive_are_kept(served: tuple[Path, str]) -> None:
    root, url = served
    (root / "links.tar.gz").write_bytes(
        tar_gz(
            [
                dir_member("top"),
                file_member("top/common/setup.sh", "echo common\n"),
                dir_member("top/web"),
                link_member("top/web/setup.sh", "../common/setup.sh"),
            ]
        )
    )
    resolved = fetch(archive=f"{url}/links.tar.gz")
    link = Path(resolved.directory) / "web/setup.sh"
    assert link.is_symlink() and link.read_text() == "echo common\n"
    assert resolved.recipes[ConfigurationManager.SHELL] == ["common::setup", "web::setup"]


# ---- directories, inventory, cache ---------------------------------------------------------


def test_directory_source_is_used_in_place(tmp_path: Path, cache: Path) -> None:
    top = write_tree(tmp_path / "cookbooks", V1)
    resolved = fetch(source=str(top))
    assert resolved.directory == str(top)
    assert resolved.digest == cookbooks_digest(str(top))
    assert resolved.description == f"directory {top}"
    assert_clean(cache)  # nothing copied
    site = fetch(source=str(top), path="site")
    assert site.directory == str(top / "site")


def test_directory_that_does_not_exist(tmp_path: Path) -> None:
    error = failure(source=str(tmp_path / "gone"))
    assert_non_retryable(error, f"directory {tmp_path / 'gone'} does not exist on this worker")


def test_recipe_inventory_per_manager(repo: Repo) -> None:
    resolved = fetch(git=str(repo.path), revision="v1")
    assert resolved.recipes == {
        ConfigurationManager.SHELL: SHELL_V1,
        ConfigurationManager.PUPPET: PUPPET_V1,
        ConfigurationManager.CHEF: CHEF_V1,
    }


def test_inventory_counts_a_link_only_if_it_leads_to_a_file_inside_the_tree(
    tmp_path: Path,
) -> None:
    top = tmp_path / "cookbooks"
    (top / "common").mkdir(parents=True)
    (top / "common" / "setup.sh").write_text("true\n")
    (top / "web").mkdir()
    (top / "web" / "setup.sh").symlink_to("../common/setup.sh")
    (top / "web" / "deploy.sh").symlink_to("missing.sh")
    resolved = fetch(source=str(top))
    assert resolved.recipes[ConfigurationManager.SHELL] == ["common::setup", "web::setup"]


def test_a_link_leading_out_of_the_tree_is_refused_naming_it(tmp_path: Path) -> None:
    # It would point at the worker's disk, not the instance's: the tree cannot be packed.
    top = tmp_path / "cookbooks"
    (top / "web").mkdir(parents=True)
    (tmp_path / "outside.sh").write_text("true\n")
    (top / "web" / "configure.sh").symlink_to(tmp_path / "outside.sh")
    with pytest.raises(ApplicationError, match=r"configure\.sh: a link leading out") as caught:
        fetch(source=str(top))
    assert caught.value.non_retryable


def test_same_source_twice_is_one_cache_entry(repo: Repo, cache: Path) -> None:
    first = fetch(git=str(repo.path), revision="v1")
    entry = Path(first.directory)
    old = time.time() - 3600
    os.utime(entry, (old, old))
    second = fetch(git=str(repo.path), revision="v1")
    assert second == first
    assert entry.stat().st_mtime > old + 60  # refreshed: a fetch counts as a use
    assert [p.name for p in cache.iterdir()] == [first.digest]


def test_concurrent_fetches_of_the_same_content(repo: Repo, cache: Path) -> None:
    results: list[ResolvedCookbooks] = []

    def one() -> None:
        results.append(fetch(git=str(repo.path), revision="v2"))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len({r.directory for r in results}) == 1
    assert [p.name for p in cache.iterdir()] == [results[0].digest]


def test_old_cache_entries_are_pruned(repo: Repo, cache: Path) -> None:
    v1 = Path(fetch(git=str(repo.path), revision="v1").directory)
    ten_days_ago = time.time() - timedelta(days=10).total_seconds()
    os.utime(v1, (ten_days_ago, ten_days_ago))
    abandoned = cache / f"{cookbook_sources.STAGING_PREFIX}crashed"
    abandoned.mkdir()
    os.utime(abandoned, (ten_days_ago, ten_days_ago))
    foreign = cache / "not-ours"
    foreign.mkdir()
    os.utime(foreign, (ten_days_ago, ten_days_ago))

    v2 = Path(fetch(git=str(repo.path), revision="v2").directory)

    assert sorted(p.name for p in cache.iterdir()) == sorted([v2.name, "not-ours"])
    # The entry just produced is kept however old its files look.
    os.utime(v2, (ten_days_ago, ten_days_ago))
    assert prune_cache(keep=v2.name) == []
    assert prune_cache() == [v2]


# ---- the activity -------------------------------------------------------------------------


async def test_activity_fetches_and_heartbeats(repo: Repo, cache: Path) -> None:
    env = ActivityEnvironment()
    heartbeats: list[object] = []
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    resolved = await env.run(fetch_cookbooks, request(git=str(repo.path), revision="v1"))

    assert resolved.directory == str(cache / resolved.digest)
    assert resolved.recipes[ConfigurationManager.SHELL] == SHELL_V1
    assert heartbeats


async def test_activity_failure_is_an_application_error(repo: Repo) -> None:
    nope = request(git=str(repo.path), revision="nope")
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(fetch_cookbooks, nope)
    assert_non_retryable(caught.value, "couldn't find remote ref nope")


async def test_cancelled_activity_stops_the_download(cache: Path) -> None:
    env = ActivityEnvironment()
    with slow_server(b"x" * 1024, pause=0.05) as url:
        running = asyncio.ensure_future(env.run(fetch_cookbooks, request(archive=url)))
        while not cache.exists() or not list(cache.iterdir()):
            await asyncio.sleep(0.05)
        env.cancel()
        with pytest.raises((CancelledError, asyncio.CancelledError)):
            await running
        assert_clean(cache)  # while the server still sends: the download was stopped


def test_git_is_required(monkeypatch: pytest.MonkeyPatch, repo: Repo, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("git") is None
    assert_non_retryable(failure(git=str(repo.path)), "git is not installed on this worker")


# ---- the artifact store ------------------------------------------------------------------


def test_a_packed_directory_is_fetched_from_the_store_not_its_path(
    tmp_path: Path, home: Path
) -> None:
    top = write_tree(tmp_path / "cli machine" / "cookbooks", V1)
    store = open_store(str(tmp_path / "shared store"))
    artifact = tree_cache.publish(store, top, cache=False)
    shutil.rmtree(top)  # the CLI's machine, not this worker's
    source = {"source": str(top), "artifact": artifact}
    resolved = resolve(request(**source), store=open_store(str(tmp_path / "shared store")))
    assert resolved.blob == artifact
    assert Path(resolved.directory) == home / "cache" / "trees" / artifact
    assert read_tree(Path(resolved.directory)) == V1
    assert resolved.description == f"directory {top}"


def test_a_git_source_is_put_in_the_store_for_every_worker(
    repo: Repo, tmp_path: Path, home: Path
) -> None:
    store = open_store(str(tmp_path / "shared store"))
    resolved = resolve(request(git=str(repo.path), revision="v1"), store=store)
    assert resolved.blob is not None and store.has(resolved.blob)
    shutil.rmtree(home / "cache" / "trees")  # another worker: only the store is shared
    assert read_tree(tree_cache.tree(store, resolved.blob)) == V1


def test_a_missing_artifact_is_put_from_a_directory_here_of_that_very_digest(
    tmp_path: Path,
) -> None:
    # A spec loaded without a store (load_stack_file for a plan) carries only the digest.
    top = write_tree(tmp_path / "cookbooks", V1)
    store = open_store(str(tmp_path / "shared store"))
    artifact = tree_digest(top)
    resolved = resolve(request(source=str(top), artifact=artifact), store=store)
    assert resolved.blob == artifact and store.has(artifact)
    (top / "web" / "setup.sh").write_text("changed\n")  # no longer that digest: refused
    other = "ef" * 32
    with pytest.raises(ApplicationError, match=f"blob {other} is not there"):
        resolve(request(source=str(top), artifact=other), store=store)


def test_a_missing_artifact_fails_naming_it_not_retried(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "shared store"))
    artifact = "ab" * 32
    with pytest.raises(ApplicationError, match=f"blob {artifact} is not there") as caught:
        resolve(request(source=str(tmp_path), artifact=artifact), store=store)
    assert caught.value.non_retryable


def test_an_unavailable_store_is_retried(tmp_path: Path) -> None:
    (tmp_path / "not a directory").write_text("")
    store = open_store(str(tmp_path / "not a directory" / "store"))
    top = write_tree(tmp_path / "cookbooks", V1)
    with pytest.raises(ApplicationError, match="artifact store") as caught:
        resolve(request(source=str(top)), store=store)
    assert caught.value.type == ErrorType.COOKBOOKS_UNAVAILABLE
    assert not caught.value.non_retryable
