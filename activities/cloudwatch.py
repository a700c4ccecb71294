"""CloudWatch: ec2 instances' metrics for load-based scaling, and opsflow's own gauges.

- `latest_values(region, instance_ids, metrics, period)`: for each instance and each of
  `metrics` (a CloudWatchMetric: namespace, name, stat; dimension InstanceId), the latest
  value over the last WINDOW_SECONDS, with ONE GetMetricData call for all of them (a
  MetricDataQuery per pair; more than MAX_QUERIES pairs take one call per MAX_QUERIES).
  None for a pair without a datapoint in the window (just launched, detailed monitoring
  off and its 5-minute datapoint not there yet, an agent not publishing). `read_metrics`
  (activities.metrics) takes ec2 instances' cpu (AWS/EC2 CPUUtilization, Average:
  `cloudwatch_cpu`) and a layer's `custom_cloudwatch_metric` from here instead of SSH.
- `publish_layer_gauges` activity: PutMetricData to namespace `opsflow`, metrics
  InstancesOnline, InstancesTotal and HealingEvents (unit Count), dimensions Stack and
  Layer. The healing loop of an ec2 stack's layer calls it once a minute.

boto3 is configured the standard way (AWS_PROFILE, AWS_ENDPOINT_URL, instance roles, ...);
the region is the stack's. Errors, as in the ec2 provider: throttling is retried by
botocore's standard retry mode (max_attempts 5: up to 5 retries) and, past it, is a retryable
CloudWatchThrottled; any other refusal is a non-retryable CloudWatchRefused carrying AWS's
code and message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity

from activities import aws, names
from opsflow.messages import LayerGaugesInput
from opsflow.spec import CloudWatchMetric

NAMESPACE = "opsflow"
EC2_NAMESPACE = "AWS/EC2"
CPU_METRIC = "CPUUtilization"
CPU = CloudWatchMetric(namespace=EC2_NAMESPACE, name=CPU_METRIC, stat="Average")
WINDOW_SECONDS = 600  # how far back a datapoint still counts
MAX_QUERIES = 500  # GetMetricData's limit of queries per call


def client(region: str) -> Any:
    return aws.client("cloudwatch", region)


def latest_values(
    region: str,
    instance_ids: Iterable[str],
    metrics: Mapping[str, CloudWatchMetric],
    period: int = 60,
    *,
    now: datetime | None = None,
) -> dict[str, dict[str, float | None]]:
    """Instance id -> {key -> the latest value of metrics[key] (dimension InstanceId) in
    the last WINDOW_SECONDS, None when there is no datapoint there}. One GetMetricData call
    per MAX_QUERIES (instance, metric) pairs. Blocking."""
    ids = list(dict.fromkeys(instance_ids))
    pairs = [(instance_id, key) for instance_id in ids for key in metrics]
    end = now or datetime.now(UTC)
    start = end - timedelta(seconds=WINDOW_SECONDS)
    found: dict[tuple[str, str], float | None] = {}
    if pairs:
        cloudwatch = client(region)
        for first in range(0, len(pairs), MAX_QUERIES):
            chunk = pairs[first : first + MAX_QUERIES]
            found |= _latest(cloudwatch, chunk, metrics, start, end, period)
    return {i: {key: found[(i, key)] for key in metrics} for i in ids}


def cloudwatch_cpu(
    region: str,
    instance_ids: Iterable[str],
    period: int = 60,
    *,
    now: datetime | None = None,
) -> dict[str, float | None]:
    """Instance id -> its latest average CPUUtilization (percent) in the last
    WINDOW_SECONDS, None when it has no datapoint there. Blocking."""
    found = latest_values(region, instance_ids, {"cpu": CPU}, period, now=now)
    return {instance_id: values["cpu"] for instance_id, values in found.items()}


def _latest(
    cloudwatch: Any,
    pairs: Sequence[tuple[str, str]],
    metrics: Mapping[str, CloudWatchMetric],
    start: datetime,
    end: datetime,
    period: int,
) -> dict[tuple[str, str], float | None]:
    """One GetMetricData (pages followed) for these (instance id, metric key) pairs."""
    query_ids = {f"q{index}": pair for index, pair in enumerate(pairs)}
    queries = [
        _query(query_id, instance_id, metrics[key], period)
        for query_id, (instance_id, key) in query_ids.items()
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
        raise aws.refusal(err, aws.CLOUDWATCH_ERRORS) from err
    return {
        pair: (round(newest[query_id][1], 2) if query_id in newest else None)
        for query_id, pair in query_ids.items()
    }


def _query(
    query_id: str, instance_id: str, metric: CloudWatchMetric, period: int
) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": metric.namespace,
                "MetricName": metric.name,
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            },
            "Period": period,
            "Stat": metric.stat,
        },
        "ReturnData": True,
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
        raise aws.refusal(err, aws.CLOUDWATCH_ERRORS) from err


# What the worker registers (worker.py: `*cloudwatch.ACTIVITIES`).
ACTIVITIES = [publish_layer_gauges]
