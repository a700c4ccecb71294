"""The kinds of events a stack records (`opsflow stack events`, `describe -o json`).

The values are what the CLI prints and what recorded stacks hold: never change one.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    # The stack itself.
    APPLIED = "applied"
    DELETING = "deleting"
    STACK_DELETED = "stack_deleted"
    COOKBOOKS = "cookbooks"
    # Its instances, and the configure rounds their comings and goings start.
    INSTANCE_ADDED = "instance_added"
    INSTANCE_STATUS = "instance_status"
    CONFIGURE = "configure"
    # A configuration snapshot that could not be published (runs then ask the stack).
    SNAPSHOT_FAILED = "snapshot_failed"
    # Commands and deployments across instances.
    COMMAND = "command"
    DEPLOYMENT = "deployment"
    # The per-layer loops and schedules the stack keeps running.
    HEALING_STARTED = "healing_started"
    HEALING_STOPPED = "healing_stopped"
    SCALING_STARTED = "scaling_started"
    SCALING_STOPPED = "scaling_stopped"
    SCHEDULES = "schedules"
    # Scaling: an instance started or stopped for a reason; a layer's load-based step.
    SCALING = "scaling"
    SCALED_UP = "scaled_up"
    SCALED_DOWN = "scaled_down"
    # Auto healing: the loop's decisions (opsflow.healing.Action has the same values)...
    HEALTH_DETECTED = "health_detected"
    HEAL_STARTED = "heal_started"
    HEAL_NOT_POSSIBLE = "heal_not_possible"
    HEAL_GAVE_UP = "heal_gave_up"
    HEALTH_RECOVERED = "health_recovered"
    # ...how each heal ended, and a CloudWatch publish that failed.
    HEALED = "healed"
    HEAL_FAILED = "heal_failed"
    HEAL_SKIPPED = "heal_skipped"
    GAUGES_FAILED = "gauges_failed"
