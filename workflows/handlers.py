"""Names of the handlers other workflows and activities call where importing the
handler's class would make a cycle: the stack workflow imports every workflow that
signals it, an instance is signalled by the healing loop it answers, and activities
import no workflow code. Each handler is declared under its name here
(`@workflow.signal(name=handlers.INSTANCE_CHANGED)`), so caller and handler cannot drift
apart; everywhere else callers use method references (`handle.signal(Wf.method, ...)`)."""

from __future__ import annotations

from typing import Final

# StackWorkflow: signals from its instances, deployments and loops.
INSTANCE_CHANGED: Final = "instance_changed"
DEPLOYMENT_FINISHED: Final = "deployment_finished"
RECORD_EVENT: Final = "record_event"
HEAL_INSTANCE: Final = "heal_instance"
SCALE_INSTANCE: Final = "scale_instance"
# StackWorkflow: queries from activities.
RUN_CONTEXT: Final = "run_context"
LAYER_INSTANCES: Final = "layer_instances"
HEALING_INSTANCES: Final = "healing_instances"
CONFIGURATION_SNAPSHOT: Final = "configuration_snapshot"
# LayerHealingWorkflow: an instance's answer to a heal it asked for.
INSTANCE_RESULT: Final = "instance_result"
