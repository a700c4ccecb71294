"""The handler names callers use across an import cycle are the names the handlers are
declared under: a renamed handler fails here, not as a signal no one receives."""

from __future__ import annotations

from collections.abc import Iterable

from temporalio.workflow import _Definition

from workflows import handlers
from workflows.healing import LayerHealingWorkflow
from workflows.stack import StackWorkflow


def named(handlers_: Iterable[str | None]) -> list[str]:
    """Handler names, sorted (None is the dynamic handler's key)."""
    return sorted(name for name in handlers_ if name is not None)


def test_the_stack_declares_every_signal_and_query_named_for_it() -> None:
    stack = _Definition.must_from_class(StackWorkflow)
    signals = {
        handlers.INSTANCE_CHANGED,
        handlers.DEPLOYMENT_FINISHED,
        handlers.RECORD_EVENT,
        handlers.HEAL_INSTANCE,
        handlers.SCALE_INSTANCE,
    }
    assert signals <= set(named(stack.signals))
    queries = {
        handlers.RUN_CONTEXT,
        handlers.LAYER_INSTANCES,
        handlers.HEALING_INSTANCES,
        handlers.CONFIGURATION_SNAPSHOT,
    }
    assert queries <= set(named(stack.queries))


def test_the_healing_loop_declares_the_instance_result_signal() -> None:
    loop = _Definition.must_from_class(LayerHealingWorkflow)
    assert handlers.INSTANCE_RESULT in named(loop.signals)


def test_the_stack_keeps_its_type_name_and_every_handler_name() -> None:
    stack = _Definition.must_from_class(StackWorkflow)
    assert stack.name == "StackWorkflow"
    assert named(stack.updates) == [
        "add_instance", "app_command", "apply", "delete", "deploy", "instance_action",
        "register_instance", "run_command",
    ]  # fmt: skip
    assert named(stack.signals) == [
        "deployment_finished", "heal_instance", "instance_changed", "record_event",
        "scale_instance",
    ]  # fmt: skip
    assert named(stack.queries) == [
        "configuration_snapshot", "deployments", "describe", "healing_instances",
        "layer_instances", "run_context", "statuses",
    ]  # fmt: skip
