"""Load-based scaling's readings: cpu, memory, load and a custom metric of each instance.

`read_metrics` reads the requested metrics of every instance at once (threads of its own),
with ONE SSH command per instance (activities.ssh.run: the worker's pooled connection,
pinned host key). The command is a small POSIX sh script, built with only the parts the
request needs, that prints `key=value` lines after a start line (`opsflow_metrics=1`):

- cpu: `stat1=`, `sleep 1`, `stat2=`: the first line of /proc/stat twice; the percent busy
  over the sample is 100 * Δ(total - idle - iowait) / Δtotal (total: user to steal; guest
  time is already counted in user and nice);
- memory: `mem_total=`, `mem_available=` from /proc/meminfo: percent used is
  100 * (MemTotal - MemAvailable) / MemTotal;
- load: `load=`, the first field of /proc/loadavg (the 1-minute load average);
- custom: last, so that nothing follows its output: `custom_limit=` (when the instance
  has `timeout(1)`), then `custom_begin`, the command's stdout, and `custom_exit=` its exit
  code. The command runs with `sh -c` in the instance root (InstanceView.root; the login
  directory if unknown), stdin from /dev/null, with OPSFLOW_ROOT, OPSFLOW_INSTANCE and
  OPSFLOW_STACK set; its value is the last non-empty line of its stdout, as a float. With
  `timeout(1)` it is stopped after the time the request leaves it (`timeout` less the cpu
  sample less a second, at least 1 s), so a hanging command costs only its own value.
  Its stderr is the command's stderr (the /proc reads are silenced).

Every value reaching the script (the root, names, the command) goes through ssh.quote.
Parsing is the pure `parse_metrics`.

ec2 instances: with the request's `region` set, for every instance with an
`ec2_instance_id` the cpu (AWS/EC2 CPUUtilization, Average) and, with
`custom_cloudwatch_metric`, the custom value come from CloudWatch instead
(activities.cloudwatch.latest_values: the latest datapoint of each, ONE GetMetricData call
for all of them, made while the SSH reads run); memory and load are still read over SSH, and
an instance whose requested metrics all come from CloudWatch needs no SSH at all. An
instance without a datapoint yet, or a CloudWatch that cannot be read (throttled past its
retries, refused, no answer in time), is an error for those metrics, the rest of its values
kept. An instance that is not an EC2 instance (a registered host in an ec2 stack) reads its
cpu over SSH, and cannot have a `custom_cloudwatch_metric` value (an error for it).

Each instance gets `timeout` seconds for its command and `timeout + 1` for the whole read,
connecting included; a read past that is abandoned (its thread ends on ssh's own limits).

What can go wrong is an answer, not an error: an instance that cannot be read (no SSH
endpoint, SSH unreachable or timed out, a host key that does not match, /proc not there,
a custom command that fails or does not print a number) has InstanceMetrics.error set,
saying what failed, with whatever values could be read. Only a request that cannot be
read at all raises: an unknown metric, `custom` without `custom_metric` or
`custom_cloudwatch_metric` (or with both), `custom_cloudwatch_metric` without a region, a
timeout that is not positive (ApplicationError InvalidInput, non-retryable).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import paramiko
from botocore.exceptions import BotoCoreError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import cloudwatch, names, ssh
from activities.heartbeat import heartbeating
from opsflow.errors import ErrorType
from opsflow.messages import InstanceMetrics, InstanceView, MetricsReport, ReadMetricsInput
from opsflow.spec import CloudWatchMetric, Metric
from workflows.failures import invalid

METRICS = tuple(Metric)
CPU_SAMPLE_SECONDS = 1
# What the script needs besides the custom command, within the request's timeout.
CUSTOM_MARGIN_SECONDS = 1.0
# Connecting (when the pooled connection is gone) on top of the command's timeout.
CONNECT_GRACE_SECONDS = 1.0
DETAIL_LIMIT = 200

_START = "opsflow_metrics=1"
_CUSTOM_BEGIN = "custom_begin"
_CUSTOM_EXIT = "custom_exit="
_TIMED_OUT = 124  # timeout(1)'s exit code when the time is up

# Reads block on sockets; a layer's instances are read at the same moment.
_READ_THREADS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="opsflow-metrics")

_T = TypeVar("_T")


class _Unreadable(Exception):
    """One metric could not be read; the message says why."""


# Instance id -> metric key -> value (None: no datapoint), or why CloudWatch was not read.
_CloudWatchFound = dict[str, dict[str, float | None]] | str


def no_datapoint(metric: CloudWatchMetric) -> str:
    return f"no CloudWatch datapoint for {metric.describe()} yet"


NO_DATAPOINT = no_datapoint(cloudwatch.CPU)


@activity.defn(name=names.READ_METRICS)
async def read_metrics(request: ReadMetricsInput) -> MetricsReport:
    """Read the requested metrics of every instance at once; see the module docstring."""
    metrics = _checked(request)
    loop = asyncio.get_running_loop()
    limit = request.timeout + CONNECT_GRACE_SECONDS
    from_cloudwatch = cloudwatch_metrics(request, metrics)
    ec2_ids = {
        view.hostname: view.ec2_instance_id
        for view in request.instances
        if view.ec2_instance_id and from_cloudwatch
    }

    async def one(view: InstanceView) -> InstanceMetrics:
        if view.hostname in ec2_ids:
            return await over_ssh(view, [m for m in metrics if m not in from_cloudwatch])
        if Metric.CUSTOM not in from_cloudwatch:
            return await over_ssh(view, metrics)
        # Its cpu is read over SSH; a per-instance CloudWatch metric needs an EC2 id.
        result = await over_ssh(view, [m for m in metrics if m != Metric.CUSTOM])
        problem = f"custom: {view.hostname} is not an EC2 instance (no CloudWatch metrics)"
        return _with_problems(result, result.values, [problem])

    async def over_ssh(view: InstanceView, wanted: list[str]) -> InstanceMetrics:
        if not wanted:
            return InstanceMetrics(hostname=view.hostname)
        if view.ssh is None:
            return InstanceMetrics(hostname=view.hostname, error="no SSH endpoint")
        reading = loop.run_in_executor(_READ_THREADS, read_instance, view, request, wanted)
        try:
            return await asyncio.wait_for(reading, limit)
        except TimeoutError:
            return InstanceMetrics(
                hostname=view.hostname, error=f"SSH did not answer in {limit:g}s"
            )

    async def from_aws() -> _CloudWatchFound:
        if not ec2_ids or request.region is None:
            return {}
        reading = loop.run_in_executor(
            _READ_THREADS,
            cloudwatch.latest_values,
            request.region,
            list(ec2_ids.values()),
            from_cloudwatch,
        )
        try:
            return await asyncio.wait_for(reading, limit)
        except TimeoutError:
            return f"CloudWatch did not answer in {limit:g}s"
        except ApplicationError as error:
            return _clip(error.message)
        except BotoCoreError as error:  # no credentials, endpoint unreachable, ...
            return _clip(str(error) or type(error).__name__)

    async def everything() -> tuple[_CloudWatchFound, list[InstanceMetrics]]:
        reads = asyncio.gather(*(one(v) for v in request.instances))
        found, results = await asyncio.gather(from_aws(), reads)
        return found, list(results)

    found, results = await heartbeating(everything())
    return MetricsReport(
        instances=[
            _with_cloudwatch(r, ec2_ids.get(r.hostname), from_cloudwatch, found) for r in results
        ]
    )


def cloudwatch_metrics(
    request: ReadMetricsInput, metrics: list[str]
) -> dict[str, CloudWatchMetric]:
    """Metric key -> the CloudWatch metric it is read from on ec2 instances."""
    if request.region is None:
        return {}
    found: dict[str, CloudWatchMetric] = {}
    if Metric.CPU in metrics:
        found[Metric.CPU] = cloudwatch.CPU
    if Metric.CUSTOM in metrics and request.custom_cloudwatch_metric is not None:
        found[Metric.CUSTOM] = request.custom_cloudwatch_metric
    return found


def _with_cloudwatch(
    result: InstanceMetrics,
    instance_id: str | None,
    metrics: Mapping[str, CloudWatchMetric],
    found: _CloudWatchFound,
) -> InstanceMetrics:
    """`result` (the SSH part) with what CloudWatch gave for `instance_id`, if any."""
    if instance_id is None:
        return result
    values = dict(result.values)
    problems: list[str] = []
    for key, metric in metrics.items():
        if isinstance(found, str):
            problems.append(f"{key}: {found}")
        elif (value := found.get(instance_id, {}).get(key)) is None:
            problems.append(f"{key}: {no_datapoint(metric)}")
        else:
            values[key] = value
    return _with_problems(result, values, problems)


def _with_problems(
    result: InstanceMetrics, values: dict[str, float], problems: list[str]
) -> InstanceMetrics:
    """`result` with these values, and these problems before its own error."""
    error = "; ".join(p for p in (*problems, result.error) if p) or None
    return InstanceMetrics(hostname=result.hostname, values=values, error=error)


def read_instance(
    view: InstanceView, request: ReadMetricsInput, metrics: list[str]
) -> InstanceMetrics:
    """Read `metrics` of one instance with one SSH command (blocking). SSH failures are
    answers (InstanceMetrics.error), never raised."""
    assert view.ssh is not None
    script = metrics_script(
        metrics,
        custom_metric=request.custom_metric,
        timeout=request.timeout,
        stack=request.stack,
        hostname=view.hostname,
        root=view.root,
    )
    try:
        _, out, err = ssh.run(view.ssh, script, timeout=request.timeout)
    except ApplicationError as error:  # unreachable, host key, auth, timeout
        if error.type == ErrorType.SSH_COMMAND_TIMEOUT:
            reason = f"SSH command timed out after {request.timeout:g}s"
        else:
            reason = error.message
        return InstanceMetrics(hostname=view.hostname, error=_clip(reason))
    except (paramiko.SSHException, EOFError, OSError) as error:
        reason = f"SSH failed: {str(error) or type(error).__name__}"
        return InstanceMetrics(hostname=view.hostname, error=_clip(reason))
    values, problem = parse_metrics(out, metrics, stderr=err)
    return InstanceMetrics(hostname=view.hostname, values=values, error=problem)


def metrics_script(
    metrics: list[str],
    *,
    custom_metric: str | None,
    timeout: float,
    stack: str,
    hostname: str,
    root: str | None,
) -> str:
    """The sh script that prints what parse_metrics reads, with only the parts `metrics`
    needs."""
    q = ssh.quote
    parts = [f"echo {_START}"]
    if Metric.CPU in metrics:
        # 2>/dev/null first, so a missing /proc file says nothing on stderr.
        parts += [
            "s=; read -r s 2>/dev/null </proc/stat; printf 'stat1=%s\\n' \"$s\"",
            f"sleep {CPU_SAMPLE_SECONDS}",
            "s=; read -r s 2>/dev/null </proc/stat; printf 'stat2=%s\\n' \"$s\"",
        ]
    if Metric.MEMORY in metrics:
        parts.append(
            "while read -r k v _; do case $k in"
            " MemTotal:) printf 'mem_total=%s\\n' \"$v\";;"
            " MemAvailable:) printf 'mem_available=%s\\n' \"$v\";;"
            " esac; done 2>/dev/null </proc/meminfo"
        )
    if Metric.LOAD in metrics:
        parts.append("l=; read -r l _ 2>/dev/null </proc/loadavg; printf 'load=%s\\n' \"$l\"")
    if Metric.CUSTOM in metrics:
        if custom_metric is None:
            raise ValueError("the custom metric needs a command")
        spent = CPU_SAMPLE_SECONDS if Metric.CPU in metrics else 0
        limit = max(1, int(timeout - spent - CUSTOM_MARGIN_SECONDS))
        env = {"OPSFLOW_INSTANCE": hostname, "OPSFLOW_STACK": stack}
        if root is not None:
            env["OPSFLOW_ROOT"] = root
        exports = " ".join(f"{name}={q(value)}" for name, value in sorted(env.items()))
        enter = f"cd {q(root)} && " if root is not None else ""
        parts += [
            f"set -- sh -c {q(custom_metric)}",
            "if command -v timeout >/dev/null 2>&1; then"
            f" set -- timeout {limit} \"$@\"; printf 'custom_limit=%s\\n' {limit}; fi",
            f"echo {_CUSTOM_BEGIN}",
            f'( {enter}export {exports} && exec "$@" ) </dev/null',
            "c=$?",
            f"printf '\\n{_CUSTOM_EXIT}%s\\n' \"$c\"",
        ]
    return "\n".join(parts) + "\n"


def parse_metrics(
    output: str, metrics: list[str], *, stderr: str = ""
) -> tuple[dict[str, float], str | None]:
    """The values of `metrics` in the script's `output`, and what could not be read (None
    when all were). `stderr` (the custom command's) explains a failed custom command."""
    lines = output.splitlines()
    if _START not in lines:
        said = _last_line(stderr) or _last_line(output)
        return {}, "the metrics script did not run" + (f": {_clip(said)}" if said else "")
    body = lines[lines.index(_START) + 1 :]
    head = body[: body.index(_CUSTOM_BEGIN)] if _CUSTOM_BEGIN in body else body
    fields: dict[str, str] = {}
    for line in head:
        key, sep, value = line.partition("=")
        if sep:
            fields.setdefault(key, value.strip())
    values: dict[str, float] = {}
    problems: list[str] = []
    for metric in dict.fromkeys(metrics):
        try:
            if metric == Metric.CPU:
                values[metric] = _cpu(fields)
            elif metric == Metric.MEMORY:
                values[metric] = _memory(fields)
            elif metric == Metric.LOAD:
                values[metric] = _load(fields)
            elif metric == Metric.CUSTOM:
                values[metric] = _custom(body, fields, stderr)
            else:
                raise ValueError(f"unknown metric {metric!r}")
        except _Unreadable as unreadable:
            problems.append(str(unreadable))
    return values, "; ".join(problems) or None


# ---- one metric each ----------------------------------------------------------------------


def _cpu(fields: dict[str, str]) -> float:
    busy1, total1 = _cpu_times(fields.get("stat1", ""))
    busy2, total2 = _cpu_times(fields.get("stat2", ""))
    if total2 <= total1:
        raise _Unreadable("cpu: /proc/stat did not advance over the sample")
    return round(min(max(100.0 * (busy2 - busy1) / (total2 - total1), 0.0), 100.0), 2)


def _cpu_times(line: str) -> tuple[int, int]:
    """(busy, total) jiffies from the first line of /proc/stat."""
    if not line:
        raise _Unreadable("cpu: /proc/stat could not be read")
    words = line.split()
    try:
        # user nice system idle [iowait irq softirq steal [guest guest_nice]]
        times = [int(word) for word in words[1:9]]
    except ValueError:
        times = []
    if words[0] != "cpu" or len(times) < 4:
        raise _Unreadable(f"cpu: /proc/stat's first line is not understood: {_clip(line)!r}")
    total = sum(times)
    idle = times[3] + (times[4] if len(times) > 4 else 0)
    return total - idle, total


def _memory(fields: dict[str, str]) -> float:
    total, available = fields.get("mem_total"), fields.get("mem_available")
    if total is None and available is None:
        raise _Unreadable("memory: /proc/meminfo could not be read")
    if available is None:
        raise _Unreadable("memory: /proc/meminfo has no MemAvailable (a kernel before 3.14?)")
    try:
        total_kb, available_kb = int(total or ""), int(available)
    except ValueError:
        raise _Unreadable(
            f"memory: /proc/meminfo is not understood: MemTotal {total!r}, "
            f"MemAvailable {available!r}"
        ) from None
    if total_kb <= 0:
        raise _Unreadable(f"memory: /proc/meminfo says MemTotal is {total_kb}")
    return round(min(max(100.0 * (total_kb - available_kb) / total_kb, 0.0), 100.0), 2)


def _load(fields: dict[str, str]) -> float:
    text = fields.get("load", "")
    if not text:
        raise _Unreadable("load: /proc/loadavg could not be read")
    try:
        load = float(text)
    except ValueError:
        load = math.nan
    if not math.isfinite(load) or load < 0:
        raise _Unreadable(f"load: /proc/loadavg is not understood: {_clip(text)!r}")
    return load


def _custom(body: list[str], fields: dict[str, str], stderr: str) -> float:
    if _CUSTOM_BEGIN not in body:
        raise _Unreadable("custom metric: the command did not run")
    begin = body.index(_CUSTOM_BEGIN)
    # The script's own last line; anything else there means the output was cut short.
    if len(body) <= begin + 1 or not body[-1].startswith(_CUSTOM_EXIT):
        raise _Unreadable("custom metric: the output was cut short (no exit code)")
    code_text = body[-1].removeprefix(_CUSTOM_EXIT).strip()
    printed = _last_line("\n".join(body[begin + 1 : -1]))
    error_line = _last_line(stderr)
    said = repr(_clip(printed)) if printed else "nothing"
    if error_line:
        said += f", stderr {_clip(error_line)!r}"
    if code_text != "0":
        limit = fields.get("custom_limit")
        if code_text == str(_TIMED_OUT) and limit:
            raise _Unreadable(f"custom metric: timed out after {limit}s, printed {said}")
        raise _Unreadable(f"custom metric: exit {code_text}, printed {said}")
    if not printed:
        raise _Unreadable(f"custom metric: printed {said}")
    try:
        value = float(printed)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _Unreadable(f"custom metric: printed {said}, not a number")
    return value


# ---- plumbing -----------------------------------------------------------------------------


def _checked(request: ReadMetricsInput) -> list[str]:
    """The requested metrics, each once, in order; InvalidInput if they cannot be read."""
    unknown = [m for m in request.metrics if m not in METRICS]
    if unknown:
        raise invalid(f"unknown metrics {unknown}: known are {[str(m) for m in METRICS]}")
    if request.custom_metric and request.custom_cloudwatch_metric is not None:
        raise invalid("give `custom_metric` or `custom_cloudwatch_metric`, not both")
    if request.custom_cloudwatch_metric is not None and request.region is None:
        raise invalid("`custom_cloudwatch_metric` needs the stack's region (ec2 stacks only)")
    if (
        Metric.CUSTOM in request.metrics
        and not request.custom_metric
        and request.custom_cloudwatch_metric is None
    ):
        raise invalid(
            "the custom metric needs `custom_metric`, a command printing a number, or "
            "`custom_cloudwatch_metric`"
        )
    if not request.timeout > 0:
        raise invalid(f"the timeout must be positive, not {request.timeout}")
    return list(dict.fromkeys(request.metrics))


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def _clip(text: str) -> str:
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"
