"""Commands: what workflow code asks the engine for, numbered in the order the code asked.

`wfrun.local.instance` turns workflow code's calls into these; the engine records and carries
them out, and replay checks them against the commands a history recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..payload import describe_call, describe_child, loads

if TYPE_CHECKING:
    from ..definitions import ActivityDefinition, WorkflowDefinition


@dataclass(slots=True)
class ScheduleActivity:
    seq: int
    definition: ActivityDefinition
    #: The encoded input, as recorded.
    input: bytes
    #: The input decoded against the activity's annotations, as the activity receives it.
    values: dict[str, Any]

    def describe(self) -> str:
        return describe_call(self.definition.name, loads(self.input))


@dataclass(slots=True)
class StartTimer:
    seq: int
    duration: float
    due: datetime

    def describe(self) -> str:
        return f"a timer of {self.duration:g}s"


@dataclass(slots=True)
class RecordMarker:
    seq: int
    name: str
    value: Any

    def describe(self) -> str:
        return f"{self.name} marker {self.value!r}"


@dataclass(slots=True)
class CancelActivity:
    """Workflow code stopped waiting for an activity (a lost race, a cancelled task)."""

    seq: int


@dataclass(slots=True)
class CancelTimer:
    seq: int


@dataclass(slots=True)
class StartChild:
    """Start a child run, with its own history file, and await its end."""

    seq: int
    definition: WorkflowDefinition
    #: The encoded input, as recorded.
    input: bytes
    run_id: str
    #: Where the child's code is found, for whoever resumes it alone.
    target: str

    def describe(self) -> str:
        return describe_child(self.definition.name, self.run_id, loads(self.input))


@dataclass(slots=True)
class CancelChild:
    """Workflow code stopped waiting for a child: ask the child to cancel."""

    seq: int


Command = (
    ScheduleActivity
    | StartTimer
    | RecordMarker
    | CancelActivity
    | CancelTimer
    | StartChild
    | CancelChild
)
