"""Benchmark: what each recipe runner adds per recipe over the same tool run by hand over SSH.

Launches one local instance (the local provider, under a temporary OPSFLOW_HOME) and, for
each configuration manager (shell, puppet; chef only where chef-client, cinc-client or
chef-solo exists), times a trivial recipe run with `RecipeActivities.run_recipes` called
directly (no Temporal; heartbeats are skipped outside an activity) against the same
command line run by hand with `activities.ssh.run` on the same pooled connection: `sh
recipe.sh`, or `puppet apply --detailed-exitcodes ... -e 'include bench::ok'` with the
runner's own modulepath, private dirs and hiera.yaml. Cookbooks are staged before timing;
each runner repetition uses a fresh run id (claim, run files, detached start, wait, whole
log back, log saved on the worker).

Then the staging cost of a 10 MB cookbook tree of random (incompressible) files with the
shell runner: the first run of a new tree (hash it, learn the instance lacks it, upload,
run: two SSH commands), a second run (hash, run: one command), and a second run with the
digest given by the stack (RunContext.cookbooks_digest: no hashing on the worker).

    .venv/bin/python bench/runner_overhead.py [--runs 7] [--stage-runs 3]

Figures are medians over the repetitions, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from activities import local_provider, ssh  # noqa: E402
from activities.recipes.payload import cookbooks_digest  # noqa: E402
from activities.recipes.runner import RecipeActivities  # noqa: E402
from activities.ssh import quote  # noqa: E402
from opsflow.messages import (  # noqa: E402
    InstanceView,
    LaunchInput,
    LaunchResult,
    MachineInput,
    RecipeRunInput,
    RunContext,
)
from opsflow.spec import ConfigurationManager, Provider  # noqa: E402

STACK = "bench"
HOST = "b1"
CONFIGURATION = {"opsflow": {"stack": {"name": STACK}}, "bench": {"greeting": "ok"}}
COOKBOOKS = {
    ConfigurationManager.SHELL: {"bench/ok.sh": "echo ok\n"},
    ConfigurationManager.PUPPET: {
        "bench/manifests/ok.pp": "class bench::ok { notify { lookup('bench.greeting'): } }\n"
    },
    ConfigurationManager.CHEF: {
        "bench/metadata.rb": "name 'bench'\nversion '0.1.0'\n",
        "bench/recipes/ok.rb": "log node['bench']['greeting']\n",
    },
}
STAGE_BYTES = 10 * 1024 * 1024
STAGE_FILES = 40


def write_tree(top: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text(text)
    return top


def runner(
    manager: ConfigurationManager, cookbooks: Path, digest: str | None = None
) -> RecipeActivities:
    context = RunContext(
        configuration=CONFIGURATION,
        recipes=["bench::ok"],
        configuration_manager=manager,
        cookbooks_dir=str(cookbooks),
        cookbooks_digest=digest,
    )

    async def source(_: RecipeRunInput) -> RunContext:
        return context

    return RecipeActivities(source)


class Bench:
    def __init__(self, instance: LaunchResult) -> None:
        self.instance = instance
        self.counter = 0

    def request(self) -> RecipeRunInput:
        self.counter += 1
        return RecipeRunInput(
            stack=STACK,
            hostname=HOST,
            event="setup",
            run_id=f"bench-{self.counter}",
            ssh=self.instance.ssh,
            root=self.instance.root,
            instance=InstanceView(hostname=HOST, layers=["bench"]),
        )

    def run_once(self, acts: RecipeActivities) -> tuple[float, str]:
        """Seconds for one run, and its run id."""
        request = self.request()
        started = time.perf_counter()
        asyncio.run(acts.run_recipes(request))
        return time.perf_counter() - started, request.run_id

    def by_hand(self, command: str) -> float:
        started = time.perf_counter()
        code, out, err = ssh.run(self.instance.ssh, command)
        elapsed = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"by hand failed ({code}): {out}{err}")
        return elapsed


def hand_command(manager: ConfigurationManager, root: str, cookbooks: Path, run_id: str) -> str:
    """The runner's command line for bench::ok, to type by hand."""
    state = f"{root}/var/lib/opsflow"
    staged = f"{state}/cookbooks/{cookbooks_digest(str(cookbooks))}"
    run_dir = f"{state}/runs/{run_id}"
    prefix = f"cd {quote(root)} && "
    if manager == ConfigurationManager.SHELL:
        return prefix + f"sh {quote(staged + '/bench/ok.sh')} </dev/null"
    if manager == ConfigurationManager.PUPPET:
        puppet = shutil.which("puppet") or "/opt/puppetlabs/bin/puppet"
        dirs = {"confdir": "conf", "vardir": "var", "codedir": "code", "logdir": "log"}
        dirs |= {"rundir": "run", "publicdir": "public"}
        options = " ".join(f"--{k}={quote(f'{state}/puppet/{v}')}" for k, v in dirs.items())
        return prefix + (
            f"{puppet} apply --detailed-exitcodes --color=false --modulepath={quote(staged)} "
            f"{options} --hiera_config={quote(run_dir + '/hiera.yaml')} "
            "-e 'include bench::ok' </dev/null; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 2 ]"
        )
    chef = next(name for name in ("cinc-client", "chef-client", "chef-solo") if shutil.which(name))
    config = "solo.rb" if chef == "chef-solo" else "client.rb"
    local = "" if chef == "chef-solo" else "-z "
    return prefix + (
        f"{chef} {local}--no-color -F doc -c {quote(run_dir + '/' + config)} "
        f"-j {quote(run_dir + '/node.json')} -o 'recipe[bench::ok]' </dev/null"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.0f}"


def overhead(bench: Bench, top: Path, runs: int) -> list[str]:
    rows = []
    for manager in ConfigurationManager:
        if manager == ConfigurationManager.CHEF and not any(
            shutil.which(n) for n in ("cinc-client", "chef-client", "chef-solo")
        ):
            rows.append(
                f"{manager.value:<8} skipped: no chef-client, cinc-client or chef-solo here"
            )
            continue
        if manager == ConfigurationManager.PUPPET and not (
            shutil.which("puppet") or Path("/opt/puppetlabs/bin/puppet").exists()
        ):
            rows.append(f"{manager.value:<8} skipped: no puppet here")
            continue
        cookbooks = write_tree(top / manager.value, COOKBOOKS[manager])
        acts = runner(manager, cookbooks)
        _, warm_id = bench.run_once(acts)  # stages the cookbooks, warms the connection
        command = hand_command(manager, bench.instance.root, cookbooks, warm_id)
        bench.by_hand(command)
        opsflow, hand = [], []
        for _ in range(runs):  # interleaved, so drift hits both alike
            opsflow.append(bench.run_once(acts)[0])
            hand.append(bench.by_hand(command))
        runner_median, hand_median = statistics.median(opsflow), statistics.median(hand)
        rows.append(
            f"{manager.value:<8} {ms(runner_median)} {ms(hand_median)} "
            f"{ms(runner_median - hand_median)} {runner_median / hand_median:6.2f}x"
        )
    return rows


def staging(bench: Bench, top: Path, runs: int) -> list[str]:
    cookbooks = write_tree(top / "big", COOKBOOKS[ConfigurationManager.SHELL])
    for number in range(STAGE_FILES):
        (cookbooks / "bench" / "files" / f"blob{number}").parent.mkdir(exist_ok=True)
        (cookbooks / "bench" / "files" / f"blob{number}").write_bytes(
            os.urandom(STAGE_BYTES // STAGE_FILES)
        )
    acts = runner(ConfigurationManager.SHELL, cookbooks)
    first, second, given = [], [], []
    for _ in range(runs):
        # a new tree: one file changes, so the digest (and the upload) is new
        (cookbooks / "bench/files/blob0").write_bytes(os.urandom(STAGE_BYTES // STAGE_FILES))
        first.append(bench.run_once(acts)[0])
        second.append(bench.run_once(acts)[0])
        digest = cookbooks_digest(str(cookbooks))
        given.append(bench.run_once(runner(ConfigurationManager.SHELL, cookbooks, digest))[0])
    return [
        f"first run, upload       {ms(statistics.median(first))}",
        f"second run, hashed      {ms(statistics.median(second))}",
        f"second run, digest given{ms(statistics.median(given))}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="repetitions per figure")
    parser.add_argument("--stage-runs", type=int, default=3, help="repetitions of staging")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="opsflow-bench-"))
    os.environ["OPSFLOW_HOME"] = str(home)
    try:
        instance = local_provider.launch(
            LaunchInput(stack=STACK, hostname=HOST, provider=Provider.LOCAL)
        )
        bench = Bench(instance)
        print(f"one recipe, median of {args.runs} runs (ms)")
        print(f"{'manager':<8} {'opsflow':>8} {'by hand':>8} {'overhead':>8} {'ratio':>7}")
        for row in overhead(bench, home / "cookbooks", args.runs):
            print(row)
        print(f"\nstaging a 10 MB cookbook tree (shell), median of {args.stage_runs} (ms)")
        for row in staging(bench, home / "cookbooks", args.stage_runs):
            print(row)
    finally:
        ssh.close_all()
        local_provider.terminate(MachineInput(stack=STACK, hostname=HOST, provider=Provider.LOCAL))
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
