"""The stack file, as pydantic models.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting.
Paths in the file are relative to the file; the loader (client/stackfile.py) resolves them
before the spec leaves the user's machine, so workflows only ever see absolute paths.
"""

from __future__ import annotations

from opsflow.spec.apps import AppName, AppSpec, AppType, EnvName, RdsSpec, SslSpec
from opsflow.spec.fields import (
    ConfigurationManager,
    Duration,
    Hostname,
    LayerName,
    LifecycleEvent,
    PathText,
    Provider,
    RecipeName,
    SetupFailure,
    StackName,
    StrictModel,
)
from opsflow.spec.layers import (
    CloudWatchMetric,
    HealingPolicySpec,
    HealthCheckSpec,
    InstanceSpec,
    LayerHealthCheckSpec,
    LayerRecipes,
    LayerSpec,
    LoadBasedScaling,
    Metric,
    MetricThresholds,
    StackInstanceSpec,
)
from opsflow.spec.machines import (
    HOST_KEY,
    SSH_HOST,
    SSH_USER,
    Ec2Options,
    RegisteredHostSpec,
    VolumeSpec,
)
from opsflow.spec.schedules import WEEKDAYS, Hours, Scaling, WeeklySchedule
from opsflow.spec.sources import CookbookSource
from opsflow.spec.stack import DeclaredInstance, StackSpec, missing_recipes, recipe_references
from opsflow.spec.users import CHEF_VERSIONS, ChefSpec, UserSpec

__all__ = [
    "CHEF_VERSIONS",
    "HOST_KEY",
    "SSH_HOST",
    "SSH_USER",
    "WEEKDAYS",
    "AppName",
    "AppSpec",
    "AppType",
    "ChefSpec",
    "CloudWatchMetric",
    "ConfigurationManager",
    "CookbookSource",
    "DeclaredInstance",
    "Duration",
    "Ec2Options",
    "EnvName",
    "HealingPolicySpec",
    "HealthCheckSpec",
    "Hostname",
    "Hours",
    "InstanceSpec",
    "LayerHealthCheckSpec",
    "LayerName",
    "LayerRecipes",
    "LayerSpec",
    "LifecycleEvent",
    "LoadBasedScaling",
    "Metric",
    "MetricThresholds",
    "PathText",
    "Provider",
    "RdsSpec",
    "RecipeName",
    "RegisteredHostSpec",
    "Scaling",
    "SetupFailure",
    "SslSpec",
    "StackInstanceSpec",
    "StackName",
    "StackSpec",
    "StrictModel",
    "UserSpec",
    "VolumeSpec",
    "WeeklySchedule",
    "missing_recipes",
    "recipe_references",
]
