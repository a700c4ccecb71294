"""CloudWatch: the cpu of ec2 instances for load-based scaling, and opsflow's own gauges.

- `cloudwatch_cpu(region, instance_ids, period)`: the latest `Average` of AWS/EC2
  CPUUtilization (dimension InstanceId) of each instance over the last WINDOW_SECONDS, with
  ONE GetMetricData call for all of them (a MetricDataQuery each; more than
  MAX_QUERIES instances take one call per MAX_QUERIES). None for an instance without a
  datapoint in the window (just launched, or detailed monitoring off and its 5-minute
  datapoint not there yet). `read_metrics` (activities.metrics) takes ec2 instances' cpu
  from here instead of sampling /proc/stat over SSH.
- `publish_layer_gauges` activity: PutMetricData to namespace `opsflow`, metrics
  InstancesOnline, InstancesTotal and HealingEvents (unit Count), dimensions Stack and
  Layer.

boto3 is configured the standard way (AWS_PROFILE, AWS_ENDPOINT_URL, instance roles, ...);
the region is the stack's. Errors, as in the ec2 provider: throttling is retried by
botocore's standard retry mode (max_attempts 5: up to 5 retries) and, past it, is a retryable
CloudWatchThrottled; any other refusal is a non-retryable CloudWatchRefused carrying AWS's
code and message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import aws, names
from opsflow.messages import LayerGaugesInput

CLOUDWATCH_REFUSED_TYPE = "CloudWatchRefused"
CLOUDWATCH_THROTTLED_TYPE = "CloudWatchThrottled"
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
NAMESPACE = "opsflow"
EC2_NAMESPACE = "AWS/EC2"
CPU_METRIC = "CPUUtilization"
WINDOW_SECONDS = 600  # how far back a datapoint still counts
MAX_QUERIES = 500  # GetMetricData's limit of queries per call


def client(region: str) -> Any:
    return aws.client("cloudwatch", region)


def cloudwatch_cpu(
    region: str,
    instance_ids: Iterable[str],
    period: int = 60,
    *,
    now: datetime | None = None,
) -> dict[str, float | None]:
    """Instance id -> its latest average CPUUtilization (percent) in the last
    WINDOW_SECONDS, None when it has no datapoint there. Blocking."""
    ids = list(dict.fromkeys(instance_ids))
    if not ids:
        return {}
    end = now or datetime.now(UTC)
    start = end - timedelta(seconds=WINDOW_SECONDS)
    cloudwatch = client(region)
    latest: dict[str, float | None] = {}
    for first in range(0, len(ids), MAX_QUERIES):
        chunk = ids[first : first + MAX_QUERIES]
        latest |= _latest_cpu(cloudwatch, chunk, start, end, period)
    return latest


def _latest_cpu(
    cloudwatch: Any, ids: Sequence[str], start: datetime, end: datetime, period: int
) -> dict[str, float | None]:
    query_ids = {f"cpu{index}": instance_id for index, instance_id in enumerate(ids)}
    queries = [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": EC2_NAMESPACE,
                    "MetricName": CPU_METRIC,
                    "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                },
                "Period": period,
                "Stat": "Average",
            },
            "ReturnData": True,
        }
        for query_id, instance_id in query_ids.items()
    ]
    request: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampDescending",
    }
    newest: dict[str, tuple[datetime, float]] = {}
    try:
        while True:
            answer = cloudwatch.get_metric_data(**request)
            for result in answer.get("MetricDataResults", []):
                query_id = result.get("Id")
                if query_id not in query_ids:
                    continue
                for stamp, value in zip(
                    result.get("Timestamps", []), result.get("Values", []), strict=False
                ):
                    seen = newest.get(query_id)
                    if seen is None or stamp > seen[0]:
                        newest[query_id] = (stamp, float(value))
            token = answer.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
    except ClientError as err:
        raise as_application_error(err) from err
    return {
        instance_id: (round(newest[query_id][1], 2) if query_id in newest else None)
        for query_id, instance_id in query_ids.items()
    }


@activity.defn(name=names.PUBLISH_LAYER_GAUGES)
async def publish_layer_gauges(request: LayerGaugesInput) -> None:
    """Put the layer's gauges (InstancesOnline, InstancesTotal, HealingEvents) into the
    `opsflow` namespace, dimensions Stack and Layer."""
    await asyncio.to_thread(put_layer_gauges, request)


def put_layer_gauges(request: LayerGaugesInput, *, now: datetime | None = None) -> None:
    """publish_layer_gauges' work (blocking)."""
    at = now or datetime.now(UTC)
    dimensions = [
        {"Name": "Stack", "Value": request.stack},
        {"Name": "Layer", "Value": request.layer},
    ]
    gauges = {
        "InstancesOnline": request.online,
        "InstancesTotal": request.total,
        "HealingEvents": request.healing_events,
    }
    data = [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": at,
            "Value": float(value),
            "Unit": "Count",
        }
        for name, value in gauges.items()
    ]
    try:
        client(request.region).put_metric_data(Namespace=NAMESPACE, MetricData=data)
    except ClientError as err:
        raise as_application_error(err) from err


def as_application_error(err: ClientError) -> ApplicationError:
    """AWS's refusal as an ApplicationError: throttling retryable, the rest not."""
    error = err.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = error.get("Message", str(err))
    text = f"AWS refused {err.operation_name}: {code}: {message}"
    if code in THROTTLING_CODES:
        return ApplicationError(text, type=CLOUDWATCH_THROTTLED_TYPE)
    return ApplicationError(text, type=CLOUDWATCH_REFUSED_TYPE, non_retryable=True)


# What the worker registers (worker.py: `*cloudwatch.ACTIVITIES`).
ACTIVITIES = [publish_layer_gauges]
