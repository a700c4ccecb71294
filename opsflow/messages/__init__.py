"""Inputs and results of every workflow message and activity, one module per area:
machines, apps (and what recipe runs read), the stack workflow and its instance commands,
deployments, and the per-layer loops. Everything is imported from here.

Each message has its own small type so a field can be added later without breaking
running workflows (new fields always get defaults). A type keeps its name when it moves
between these modules: payloads carry fields, not module paths.
"""

from opsflow.messages.apps import *  # noqa: F403
from opsflow.messages.deployments import *  # noqa: F403
from opsflow.messages.loops import *  # noqa: F403
from opsflow.messages.machines import *  # noqa: F403
from opsflow.messages.stack import *  # noqa: F403
