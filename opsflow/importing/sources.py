"""Where code came from on OpsWorks (a stack's CustomCookbooksSource, an app's AppSource:
git, archive, s3, svn) as an opsflow source (git, archive), or `--source NAME=PATH`."""

from __future__ import annotations

from typing import Any

from opsflow.importing.fields import Fields
from opsflow.importing.model import fill_in

_TARBALL = (".tar.gz", ".tgz")


def code_source(fields: Fields, prop: str, what: str) -> dict[str, Any] | None:
    """The source of `fields`' `prop` (what: `the cookbooks`, `app shop`) in opsflow's
    form; credentials are never carried (a report line each), and where the source cannot
    work without them its URL is a placeholder."""
    given = fields.mapping(prop)
    if not given:
        return None
    source = fields.nested(prop, given)
    kind = (source.text("Type") or "").lower()
    url = source.text("Url")
    revision = source.text("Revision")
    credentials = [key for key in ("Username", "Password", "SshKey") if source.has(key)]
    for key in credentials:
        # Never quoted: a password or a private key.
        source.drop(key, "opsflow fetches sources with the worker's own credentials")
    found: dict[str, Any] | None
    if kind == "git":
        found = {"git": url or fill_in(f"the git URL of {what}"), "revision": revision}
        if "SshKey" in credentials or "Password" in credentials:
            fields.note(
                f"{prop}.Url",
                "a private repository: the worker must reach it with its own git credentials "
                f"(or give --source for {what})",
            )
    elif kind in ("archive", "s3"):
        found = _archive(source, url, kind, bool(credentials), what)
        if revision is not None:
            source.note("Revision", "not carried over: an archive has no revision")
    elif kind in ("", "other"):
        if url is not None:
            source.note("Url", f"not carried over: source type {kind or 'none'} is not fetched")
        found = None
    else:
        source.note("Type", f"{kind!r} sources are not fetched by opsflow (git, archive)")
        found = {"archive": fill_in(f"a git or .tar.gz source for {what} ({kind} {url})")}
    source.finish()
    return {key: value for key, value in found.items() if value is not None} if found else None


def _archive(
    source: Fields, url: str | None, kind: str, credentials: bool, what: str
) -> dict[str, Any]:
    if url is None:
        return {"archive": fill_in(f"the .tar.gz URL of {what}")}
    if not url.startswith(("https://", "http://")):
        source.note("Url", f"{url!r} is not an http(s) URL opsflow can fetch")
        return {"archive": fill_in(f"an https URL of a .tar.gz for {what} (was {url})")}
    if kind == "s3" and credentials:
        source.note(
            "Url",
            "a private S3 object (it needed access keys): opsflow fetches over https without keys",
        )
        return {"archive": fill_in(f"a URL of {what} that opsflow can fetch without keys")}
    if kind == "s3":
        source.note("Type", "s3: fetched over https without keys, which works if it is public")
    if not url.split("?", 1)[0].endswith(_TARBALL):
        source.note("Url", "opsflow unpacks .tar.gz archives; a zip, bzip2 or plain tar fails")
    return {"archive": url}
