"""The shell recipe runner: `cookbook::recipe` is `{cookbooks}/cookbook/recipe.sh`, run over SSH.

On the instance, under `{root}/var/lib/opsflow/`:

    cookbooks/{sha256}/   the worker's cookbooks directory, staged once per content hash
    runs/{run_id}/        one run: run.sh, attributes.json, recipes, owner, pid, log,
                          recipe (the one running, or the one that failed), exit

Exactly once, even when the worker dies or the connection drops mid-run: the run is
claimed by an atomic `mkdir runs/{run_id}` and started detached (setsid nohup), so it
survives both; a retried activity (same run_id) finds the directory and re-attaches to
the run instead of starting it again. A run directory without `exit` whose process is
gone died before it could finish: it is renamed to `{run_id}.lost-N` and the run starts
afresh (recipes, like OpsWorks' chef recipes, are expected to be idempotent). Cancelling
the activity leaves the run going; a later attempt with the same run_id picks it up.

SSH round trips: one command per run, normally. Its stdin is a gzipped tar of the run
files (attributes.json, recipes, run.sh), never the command line (an argv string is
limited to 128 KiB; attributes may be larger); it is extracted aside under `tmp/`, then:
1. if the payload carries `cookbooks/` and `cookbooks/{sha256}` is missing, it is staged
   (renamed into place: all or nothing);
2. if the cookbooks are still missing it prints `staged=0` and stops, before claiming;
3. it claims the run directory, or finds an earlier attempt's (done, running: re-attach;
   lost: renamed aside, claimed afresh); only a fresh claim moves the run files in and
   starts run.sh; a re-attach writes nothing;
4. it waits for `exit` for up to 30 s and prints the outcome and the log tail.
The cookbooks ride along when this worker has not seen them staged on the instance yet
and their payload is at most SPECULATIVE_STAGE_BYTES; otherwise a `staged=0` answer
costs one more command that carries them. A run still going after 30 s costs one more
command per 30 s chunk (which bounds how long a cancelled activity's thread lingers).
So: staged and fresh, 1 command; first run of small cookbooks, 1; of big ones, 2; a
retry, 1 (plus the chunks); no SFTP.

A recipe runs with `sh`, or directly (its shebang decides) when the file is executable,
in the instance root, stdin from /dev/null, with OPSFLOW_ATTRIBUTES (the stack
configuration JSON file), OPSFLOW_EVENT, OPSFLOW_INSTANCE, OPSFLOW_ROOT, OPSFLOW_RUN_ID and
OPSFLOW_STACK. Output (stdout and stderr) goes to `log`, each line prefixed with a UTC
timestamp. Recipes run in order and the first that fails ends the run.

What can go wrong: a recipe fails or does not exist (RecipeFailed, non-retryable, the
log tail as first detail); a bad recipe name, run id or configuration manager
(InvalidInput, non-retryable); SSH trouble (see activities.ssh: retryable unless the host
key does not match); the run process vanished without an exit code (RunLost, retryable:
the next attempt starts it afresh).

The instance needs a POSIX sh with GNU coreutils/util-linux (setsid, mkfifo, mv -T,
mktemp, tar with gzip): any mainstream Linux.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import tarfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from opentelemetry import trace
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names, ssh
from activities.ssh import quote
from opsflow.errors import INVALID_INPUT_TYPE, RECIPE_FAILED_TYPE
from opsflow.messages import RecipeRunInput, RecipeRunResult, RunContext
from opsflow.names import RECIPE, split_recipe
from opsflow.spec import ConfigurationManager

RUN_LOST_TYPE = "RunLost"
RUN_SETUP_FAILED_TYPE = "RunSetupFailed"

STATE_DIR = "var/lib/opsflow"
TAIL_LINES = 40
HEARTBEAT_SECONDS = 2.0
# One remote command waits at most this long, then the next one takes over: bounds how
# long a cancelled activity's thread lingers.
WAIT_CHUNK_SECONDS = 30
POLL_SECONDS = 0.05
# Most recipe runs are short: the first half second is polled finely, for latency.
FAST_POLL_SECONDS = 0.01
FAST_POLLS = 50
COMMAND_TIMEOUT = 120.0
# Cookbooks this worker has not seen staged on an instance go with the first command when
# their payload is at most this big (else only after the instance says it lacks them).
SPECULATIVE_STAGE_BYTES = 1 << 20
# Run ids name a directory: no slash, no leading dot, nothing a shell would interpret.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")

# Each run in progress holds a thread waiting on its remote command: the default executor
# (cores + 4 threads) would make runs on many instances queue behind each other.
_SSH_THREADS = ThreadPoolExecutor(max_workers=200, thread_name_prefix="opsflow-ssh")

_tracer = trace.get_tracer("opsflow")

# (host, port, root, cookbooks digest) this worker process has seen staged: a hint only,
# the remote command checks for itself.
_staged: set[tuple[str, int, str, str]] = set()

ContextSource = Callable[[RecipeRunInput], Awaitable[RunContext]]

# Whether a pid runs; a zombie nobody reaped yet counts as dead.
_ALIVE = (
    'alive() { kill -0 "$1" 2>/dev/null || return 1; '
    "s=$(sed -n 's/^.*) \\(.\\).*$/\\1/p' \"/proc/$1/stat\" 2>/dev/null); "
    '[ "$s" != Z ]; }'
)


class RecipeActivities:
    """The run_recipes activity; `context_source` supplies the stack's freshest context
    (in production a query of the stack workflow)."""

    def __init__(self, context_source: ContextSource) -> None:
        self._context_source = context_source

    @activity.defn(name=names.RUN_RECIPES)
    async def run_recipes(self, request: RecipeRunInput) -> RecipeRunResult:
        started = time.monotonic()
        _check_run_id(request.run_id)
        context = await self._context_source(request)
        recipes = request.recipes if request.recipes is not None else context.recipes
        _check_context(context, recipes)
        if not recipes:
            return RecipeRunResult(run_id=request.run_id, exit_code=0, log_tail="")
        # One span for the remote run, under the activity's span from TracingInterceptor;
        # it carries names and numbers only, never the attributes (they may hold secrets).
        with _tracer.start_as_current_span(
            "ssh recipes",
            attributes={
                "opsflow.stack": request.stack,
                "opsflow.instance": request.hostname,
                "opsflow.event": request.event,
                "opsflow.recipes": recipes,
                "opsflow.run_id": request.run_id,
                "server.address": request.ssh.host,
                "server.port": request.ssh.port,
            },
        ) as span:
            outcome = await _ShellRun(request, context, recipes).run()
            span.set_attribute("opsflow.exit_code", outcome.exit_code)
            span.set_attribute("opsflow.attached", outcome.attached)
        if outcome.exit_code != 0:
            raise _recipe_failed(request, outcome)
        return RecipeRunResult(
            run_id=request.run_id,
            recipes=outcome.recipes,
            exit_code=0,
            log_tail=outcome.log_tail,
            attached=outcome.attached,
            seconds=round(time.monotonic() - started, 3),
        )


# ---- checks -----------------------------------------------------------------------------


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_INPUT_TYPE, non_retryable=True)


def _check_run_id(run_id: str) -> None:
    if not RUN_ID.match(run_id):
        raise _invalid(f"invalid run id {run_id!r}")


def _check_context(context: RunContext, recipes: list[str]) -> None:
    if context.configuration_manager != ConfigurationManager.SHELL:
        raise _invalid(f"the shell runner cannot run {context.configuration_manager!s} recipes")
    # Names reach paths and the run script: only cookbook::recipe of safe characters.
    bad = [recipe for recipe in recipes if not RECIPE.match(recipe)]
    if bad:
        raise _invalid(f"invalid recipe name(s) {bad}: expected cookbook::recipe")


# ---- cookbooks --------------------------------------------------------------------------


def _tree(directory: str | None) -> list[Path]:
    if directory is None:
        return []
    top = Path(directory)
    if not top.is_dir():
        raise _invalid(f"cookbooks directory {directory} does not exist on this worker")
    return sorted(top.rglob("*"))


def cookbooks_digest(directory: str | None) -> str:
    """sha256 of the tree: relative paths, modes, file contents and link targets."""
    digest = hashlib.sha256()
    for path in _tree(directory):
        info = path.lstat()
        relative = path.relative_to(directory or "").as_posix()
        digest.update(f"{relative}\0{info.st_mode:o}\0".encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(path).encode())
        elif stat.S_ISREG(info.st_mode):
            digest.update(f"{info.st_size}\0".encode())
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _payload(files: dict[str, bytes], cookbooks: str | None, *, stage: bool) -> bytes:
    """The run's stdin: a gzipped tar of the run files, plus `cookbooks/` when staging."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
        if stage:
            _add_cookbooks(tar, cookbooks)
    return buffer.getvalue()


def _add_cookbooks(tar: tarfile.TarFile, directory: str | None) -> None:
    """The cookbooks tree as `cookbooks/` (an empty directory when there is none)."""
    if directory is not None:
        tar.add(directory, arcname="cookbooks")
        return
    info = tarfile.TarInfo("cookbooks")
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, time.time()
    tar.addfile(info)


# ---- one run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Paths of one run on the instance."""

    root: str
    run_id: str
    digest: str

    @property
    def state(self) -> str:
        return posixpath.join(self.root, STATE_DIR)

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


@dataclass(frozen=True)
class _Outcome:
    exit_code: int
    recipe: str
    recipes: list[str]
    log_tail: str
    attached: bool


class _ShellRun:
    """Claims, starts or re-attaches to, and waits for one run on one instance."""

    def __init__(self, request: RecipeRunInput, context: RunContext, recipes: list[str]) -> None:
        self.request = request
        self.context = context
        self.recipes = recipes
        self.endpoint = request.ssh
        # Marks the attempt that claimed the run directory: only it may start the run.
        self.nonce = uuid.uuid4().hex

    async def run(self) -> _Outcome:
        digest = await asyncio.to_thread(cookbooks_digest, self.context.cookbooks_dir)
        layout = _Layout(self.request.root, self.request.run_id, digest)
        # One command stages (if it carries the cookbooks), claims, writes the run files,
        # launches and waits. The cookbooks go with it unless this worker saw them staged
        # there already (or they are big); if the instance lacks them all the same, it
        # says so before claiming, and a second command carries them.
        staged_key = (self.endpoint.host, self.endpoint.port, layout.root, digest)
        first = staged_key not in _staged
        output = await _heartbeating(self._start, layout, stage=first, speculative=True)
        if _fields(_head(output)).get("staged") == "0":
            output = await _heartbeating(self._start, layout, stage=True, speculative=False)
        fields = _fields(_head(output))
        if fields.get("staged") == "1":
            _staged.add(staged_key)
        claim = fields.get("claim")
        if fields.get("staged") != "1" or claim not in ("new", "running", "done"):
            raise ApplicationError(
                f"{self._where()}: run {self.request.run_id} could not be started "
                f"(staged={fields.get('staged')}, claim={claim}); another attempt may be "
                "claiming it",
                type=RUN_SETUP_FAILED_TYPE,
            )
        return await self._wait(layout, output, attached=claim != "new")

    async def _wait(self, layout: _Layout, output: str, *, attached: bool) -> _Outcome:
        while True:
            head, _, tail = output.partition("\n---\n")
            fields = _fields(head)
            if fields.get("state") == "done":
                return _Outcome(
                    exit_code=int(fields.get("exit") or 1),
                    recipe=fields.get("recipe", ""),
                    recipes=fields.get("recipes", "").split(),
                    log_tail=tail.rstrip("\n"),
                    attached=attached,
                )
            if fields.get("state") == "died":
                raise ApplicationError(
                    f"{self._where()}: run {self.request.run_id} vanished without an exit "
                    "code; the next attempt starts it afresh",
                    type=RUN_LOST_TYPE,
                )
            # Still running after one wait chunk: the next command takes over.
            output = await _heartbeating(self._exec, _wait_script(layout))

    def _start(self, layout: _Layout, *, stage: bool, speculative: bool) -> str:
        """The one command of a run: stage (with `stage`), claim, write, launch, wait.
        `speculative`: the cookbooks may not be needed, leave them out if big."""
        attributes = json.dumps(self.context.configuration, indent=2, sort_keys=True)
        files = {
            "attributes.json": attributes.encode(),
            "recipes": (" ".join(self.recipes) + "\n").encode(),
            "run.sh": _run_script(layout, self.request, self.recipes).encode(),
        }
        payload = _payload(files, self.context.cookbooks_dir, stage=stage)
        if stage and speculative and len(payload) > SPECULATIVE_STAGE_BYTES:
            payload = _payload(files, None, stage=False)
        return self._exec(_start_script(layout, self.nonce) + _wait_body(), payload)

    def _exec(self, command: str, stdin: bytes | None = None) -> str:
        code, out, err = ssh.run(
            self.endpoint, command, timeout=WAIT_CHUNK_SECONDS + COMMAND_TIMEOUT, stdin=stdin
        )
        if code != 0:
            raise ApplicationError(
                f"{self._where()}: a remote step of run {self.request.run_id} failed "
                f"({code}): {err.strip() or out.strip()}",
                type=RUN_SETUP_FAILED_TYPE,
            )
        return out

    def _where(self) -> str:
        return f"{self.request.stack}/{self.request.hostname}"


def _recipe_failed(request: RecipeRunInput, outcome: _Outcome) -> ApplicationError:
    # Without timestamps: the message is read by people, the tail keeps them.
    texts = [line.partition(" ")[2].strip() for line in outcome.log_tail.splitlines()]
    last = next((text for text in reversed(texts) if text), "no output")
    return ApplicationError(
        f"{request.stack}/{request.hostname}: recipe {outcome.recipe or '?'} failed with "
        f"exit code {outcome.exit_code}: {last}",
        outcome.log_tail,
        type=RECIPE_FAILED_TYPE,
        non_retryable=True,
    )


def _head(output: str) -> str:
    """The `key=value` part of a remote script's output, before the log tail."""
    return output.partition("\n---\n")[0]


def _fields(output: str) -> dict[str, str]:
    """`key=value` lines printed by the remote scripts."""
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


_P = ParamSpec("_P")
_T = TypeVar("_T")


async def _heartbeating(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking `fn` in a thread, heartbeating meanwhile so Temporal notices a dead worker."""
    call = functools.partial(fn, *args, **kwargs)
    task = asyncio.get_running_loop().run_in_executor(_SSH_THREADS, call)
    while True:
        _heartbeat()
        try:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
        except asyncio.CancelledError:
            # A thread cannot be stopped: it ends with its command (one wait chunk at most).
            task.add_done_callback(lambda finished: finished.exception())
            raise
        if done:
            return task.result()


def _heartbeat() -> None:
    if activity.in_activity():
        activity.heartbeat()


# ---- remote scripts (every interpolated value is quoted) --------------------------------


def _start_script(layout: _Layout, nonce: str) -> str:
    """Read the payload (stdin) aside; stage the cookbooks if it has them; say whether
    they are staged (stop there if not, before claiming); claim the run directory or say
    what state an earlier attempt left it in; if claimed, move the run files in and start
    run.sh detached. The wait (`_wait_body`) follows in the same command."""
    run, owner = quote(layout.run), quote(posixpath.join(layout.run, "owner"))
    exit_file, pid = (
        quote(posixpath.join(layout.run, "exit")),
        quote(posixpath.join(layout.run, "pid")),
    )
    cookbooks = quote(layout.cookbooks)
    dirs = " ".join(
        quote(d) for d in (layout.runs, layout.tmp, posixpath.dirname(layout.cookbooks))
    )
    return f"""{_ALIVE}
mkdir -p {dirs} || exit 90
in=$(mktemp -d {quote(layout.tmp)}/in.XXXXXX) || exit 90
tar -xzf - -C "$in" --no-same-owner || {{ rm -rf "$in"; exit 92; }}
if [ ! -d {cookbooks} ] && [ -d "$in/cookbooks" ]; then
  mv -T "$in/cookbooks" {cookbooks} 2>/dev/null || true
fi
if [ ! -d {cookbooks} ]; then rm -rf "$in"; echo staged=0; exit 0; fi
echo staged=1
claim() {{ mkdir {run} 2>/dev/null && printf '%s\\n' {quote(nonce)} > {owner}; }}
if claim; then c=new
elif [ -e {exit_file} ]; then c=done
elif [ -f {pid} ] && alive "$(cat {pid})"; then c=running
elif [ -e {exit_file} ]; then c=done
else
  n=1; while [ -e {run}.lost-$n ]; do n=$((n + 1)); done
  mv -T {run} {run}.lost-$n && echo lost=$n
  if claim; then c=new; else c=busy; fi
fi
echo claim=$c
if [ $c = new ]; then
  mv "$in/attributes.json" "$in/recipes" "$in/run.sh" {run}/ || {{ rm -rf "$in"; exit 92; }}
fi
rm -rf "$in"
[ $c != busy ] || exit 0
cd {run} || exit 91
if [ $c = new ] && [ ! -e pid ]; then
  : >> log
  ( setsid nohup sh ./run.sh </dev/null >/dev/null 2>&1 & echo $! > pid.tmp ) && mv pid.tmp pid
fi
"""


def _wait_script(layout: _Layout) -> str:
    """Wait on a run already started (the start command's wait chunk ran out)."""
    return f"""{_ALIVE}
cd {quote(layout.run)} || exit 91
{_wait_body()}"""


def _wait_body() -> str:
    """In the run directory: poll for `exit` for one chunk, then print the outcome and the
    log tail."""
    slow = int((WAIT_CHUNK_SECONDS - FAST_POLLS * FAST_POLL_SECONDS) / POLL_SECONDS)
    return f"""i=0 d={FAST_POLL_SECONDS}
while [ ! -e exit ]; do
  [ $i -lt {FAST_POLLS + slow} ] || {{ echo state=pending; exit 0; }}
  if [ $((i % 20)) -eq 0 ] && ! alive "$(cat pid 2>/dev/null)" && [ ! -e exit ]; then
    echo state=died; exit 0
  fi
  [ $i -lt {FAST_POLLS} ] || d={POLL_SECONDS}
  sleep $d; i=$((i + 1))
done
echo state=done
echo "exit=$(cat exit)"
echo "recipe=$(cat recipe 2>/dev/null)"
echo "recipes=$(cat recipes 2>/dev/null)"
echo ---
tail -n {TAIL_LINES} log
"""


def _run_script(layout: _Layout, request: RecipeRunInput, recipes: list[str]) -> str:
    """The detached script: run each recipe in order, log with timestamps, write `exit`."""
    env = {
        "OPSFLOW_ATTRIBUTES": posixpath.join(layout.run, "attributes.json"),
        "OPSFLOW_EVENT": request.event,
        "OPSFLOW_INSTANCE": request.hostname,
        "OPSFLOW_ROOT": layout.root,
        "OPSFLOW_RUN_ID": request.run_id,
        "OPSFLOW_STACK": request.stack,
    }
    exports = "\n".join(f"export {name}={quote(value)}" for name, value in env.items())
    steps = "\n".join(
        f"step {quote(recipe)} {quote(_recipe_file(layout, recipe))} || finish $?"
        for recipe in recipes
    )
    return f"""#!/bin/sh
# opsflow run {request.run_id} (generated): recipes in order, the first failure ends it.
cd {quote(layout.run)} || exit 1
{exports}
stamp() {{
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"
  done
}}
say() {{ printf 'opsflow: %s\\n' "$1" | stamp >> log; }}
finish() {{ printf '%s\\n' "$1" > exit.tmp && mv exit.tmp exit; exit 0; }}
n=0
step() {{
  printf '%s\\n' "$1" > recipe
  if [ ! -f "$2" ]; then say "recipe $1 not found: no $2 on this instance"; return 127; fi
  say "running $1"
  n=$((n + 1)); mkfifo "stream.$n" || return 1
  {{ stamp < "stream.$n" >> log; : > "stream.$n.done"; }} &
  ( cd {quote(layout.root)} && if [ -x "$2" ]; then exec "$2"; else exec sh "$2"; fi ) \\
    > "stream.$n" 2>&1 < /dev/null
  rc=$?
  # A daemon the recipe started may hold the stream open: give the stamper 1 s, not more.
  i=0; while [ ! -e "stream.$n.done" ] && [ $i -lt 100 ]; do sleep 0.01; i=$((i + 1)); done
  rm -f "stream.$n"
  return $rc
}}
{steps}
say "done"
finish 0
"""


def _recipe_file(layout: _Layout, recipe: str) -> str:
    cookbook, name = split_recipe(recipe)
    return posixpath.join(layout.cookbooks, cookbook, f"{name}.sh")
