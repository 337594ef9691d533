"""Which wfrun workflows this process serves on Temporal, by task queue and name.

`wfrun.temporal.workflow.WfrunWorkflow` looks a run's workflow type up here; `build_worker`
fills it, and a parent's runtime adds the children it starts (so that a worker serves the
child workflows its workflows use without being told).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ..definitions import WorkflowDefinition

#: What each task queue served from this process runs: workflow name → (definition, limit).
_served: Final[dict[str, dict[str, tuple[WorkflowDefinition, int]]]] = {}


def serve(task_queue: str, definitions: Iterable[WorkflowDefinition], max_payload: int) -> None:
    """Make `WfrunWorkflow` run ``definitions`` for workflows on ``task_queue``."""
    served = _served.setdefault(task_queue, {})
    for definition in definitions:
        served[definition.name] = (definition, max_payload)


def serve_child(task_queue: str, definition: WorkflowDefinition, max_payload: int) -> None:
    """A child's workflow, met in its parent's code: this worker can serve it too."""
    _served.setdefault(task_queue, {}).setdefault(definition.name, (definition, max_payload))


def served(task_queue: str) -> list[str]:
    """The names of the workflows served on ``task_queue``."""
    return sorted(_served.get(task_queue, {}))


def lookup(task_queue: str, name: str) -> tuple[WorkflowDefinition, int] | None:
    """The definition of workflow ``name`` on ``task_queue`` and its payload limit, if served."""
    return _served.get(task_queue, {}).get(name)
