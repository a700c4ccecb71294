"""What a stack spec wants kept running beside its instances (pure): a healing loop and a
load-scaling loop per layer that turns them on, a Temporal Schedule per time-based
instance, and each instance's scaling kind."""

from __future__ import annotations

from collections.abc import Mapping

from opsflow.messages import HealingConfig, InstanceView
from opsflow.spec import LoadBasedScaling, Scaling, StackSpec, WeeklySchedule


def healing_wanted(spec: StackSpec) -> dict[str, HealingConfig]:
    """layer -> the settings of its healing loop, for each layer with auto healing on."""
    # The region (ec2 stacks only) turns on the loop's CloudWatch gauges.
    return {
        layer.name: HealingConfig(
            check=layer.health_check, policy=layer.healing, region=spec.region
        )
        for layer in spec.layers
        if layer.auto_healing
    }


def load_scaling_wanted(spec: StackSpec) -> dict[str, LoadBasedScaling]:
    """layer -> its load-based scaling settings, for each layer that turns it on."""
    return {
        layer.name: layer.load_based_scaling
        for layer in spec.layers
        if layer.load_based_scaling is not None and layer.load_based_scaling.enabled
    }


def scaling_of(spec: StackSpec) -> dict[str, Scaling]:
    """hostname -> time or load, for the file's instances that are not always on."""
    return {
        d.spec.hostname: d.spec.scaling for d in spec.declared() if d.spec.scaling != Scaling.ALWAYS
    }


def scaling_after_apply(
    spec: StackSpec, instances: Mapping[str, InstanceView], scaling: Mapping[str, Scaling]
) -> dict[str, Scaling]:
    """The file's scaling kinds, keeping the instances load-based scaling added itself
    (they are in no file, so the file cannot say)."""
    return scaling_of(spec) | {
        h: Scaling.LOAD
        for h, v in instances.items()
        if not v.from_file and scaling.get(h) == Scaling.LOAD
    }


def schedules_of(spec: StackSpec) -> dict[str, WeeklySchedule]:
    """hostname -> its weekly schedule, for each time-based instance that has one."""
    return {
        d.spec.hostname: d.spec.schedule
        for d in spec.declared()
        if d.spec.scaling == Scaling.TIME and d.spec.schedule is not None
    }
