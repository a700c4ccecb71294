"""The stack workflow, one module per concern (see workflow.py)."""

from workflows.stack.workflow import StackWorkflow

__all__ = ["StackWorkflow"]
