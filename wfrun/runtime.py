"""Seam 1: between the calls users write and whatever carries them out.

``await fetch_user(42)``, ``workflows.workflow.now()`` or ``workflows.activity_info()`` find the
code that serves them here, in two context variables: the workflow runtime of the workflow
whose code is running, and the context of the activity attempt that is running. The local
backend's `wfrun.local.instance.WorkflowInstance` is one implementation of `WorkflowRuntime`;
another backend adds another, and no user code changes.

An activity called outside any workflow goes through the same seam: `activity_runtime` then
returns the *direct* runtime, which runs the call with its retry policy and no history. The
package root installs the local one (`use_direct_runtime`), so that this module, and the
decorators built on it, depend on no backend.

Context variables, not globals: many runs share one process and one event loop, each workflow
task and each activity attempt sees its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import CodeType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol
from uuid import UUID

from .errors import UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .definitions import ActivityDefinition, WorkflowDefinition


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """What `workflows.workflow.info()` returns."""

    run_id: str
    workflow_name: str
    start_time: datetime


@dataclass(frozen=True, slots=True)
class ActivityInfo:
    """What `workflows.activity_info()` returns inside an activity.

    ``idempotency_key`` is the same for every attempt of one activity call, across retries and
    resumes: pass it to the service the activity calls (an ``Idempotency-Key`` header, a unique
    column) and the side effect happens once even when the attempt runs again.
    """

    run_id: str
    activity_id: int
    name: str
    attempt: int
    idempotency_key: str
    workflow_name: str | None = None
    heartbeat_details: tuple[Any, ...] = ()
    start_to_close_timeout: timedelta | None = None
    heartbeat_timeout: timedelta | None = None
    # One per attempt (not copied by dataclasses.replace): set when the attempt is given up.
    # A plain flag, not a threading.Event: nothing waits on it, and an Event (a Condition and
    # a lock) cost more to make than the rest of the step's bookkeeping. A thread reads it
    # whole under the GIL.
    _cancelled: bool = field(default=False, init=False, repr=False, compare=False)

    def is_cancelled(self) -> bool:
        """Whether this attempt was given up: the run was cancelled, the workflow stopped
        waiting for it, or a timeout expired.

        An ``async def`` activity sees `asyncio.CancelledError` instead; a plain ``def`` one,
        which Python cannot interrupt, should check this in its loops and return early::

            for chunk in chunks:
                if workflows.activity_info().is_cancelled():
                    return partial
                upload(chunk)
        """
        return self._cancelled

    def cancel(self) -> None:
        """Mark the attempt given up (for the engine that runs it)."""
        object.__setattr__(self, "_cancelled", True)  # frozen for users, not for the engine


class ActivityRuntime(Protocol):
    """What carries out an activity call."""

    def call_activity(
        self, definition: ActivityDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]: ...


class WorkflowRuntime(ActivityRuntime, Protocol):
    """What workflow code can ask of the engine running it."""

    @property
    def is_replaying(self) -> bool: ...

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]: ...

    def wait_condition(
        self, predicate: Callable[[], bool], timeout: float | None
    ) -> Coroutine[Any, Any, None]: ...

    def now(self) -> datetime: ...

    def random(self) -> random.Random: ...

    def uuid4(self) -> UUID: ...

    def info(self) -> WorkflowInfo: ...

    def patched(self, patch_id: str) -> bool: ...

    def execute_child(
        self, definition: WorkflowDefinition, params: Any, execution_id: str | None
    ) -> Coroutine[Any, Any, Any]: ...

    def continue_as_new(self, params: Any) -> NoReturn: ...

    def should_continue_as_new(self) -> bool: ...

    def wait_for_input(
        self, schema: type[BaseModel], label: str, timeout: float | None
    ) -> Coroutine[Any, Any, Any]: ...


@dataclass(slots=True)
class ActivityContext:
    """The running attempt: its info, and where its heartbeats go."""

    info: ActivityInfo
    heartbeat: Callable[[tuple[Any, ...]], None] = field(default=lambda details: None)


_workflow: ContextVar[WorkflowRuntime | None] = ContextVar("wfrun_workflow", default=None)
_activity: ContextVar[ActivityContext | None] = ContextVar("wfrun_activity", default=None)

_direct: ActivityRuntime | None = None

#: The code of the determinism guard's profile hook (Python before 3.12), set when
#: `wfrun.local.guard` is loaded: an activity call, wfrun's own work from its first frame,
#: steps out of the hook at once (as `wfrun.local.guard.unwatched` does), so that the hook
#: sees none of the calls it makes. None: no such hook.
guard_hook_code: CodeType | None = None
#: The code of every activity's wrapper (set by `wfrun.activity`). The guard's hook steps out
#: at that code's first event itself: it removes itself, and leaves itself here, by thread, for
#: the wrapper to put back when the call returns (a getprofile and a setprofile fewer, each an
#: event for the hook, per activity call).
activity_call_code: CodeType | None = None
guard_suspended: dict[int, Callable[..., Any]] = {}

set_workflow_runtime = _workflow.set
set_activity_context = _activity.set
reset_activity_context = _activity.reset


def use_direct_runtime(runtime: ActivityRuntime) -> None:
    """Install what runs activities called outside any workflow (done once, by the package)."""
    global _direct
    _direct = runtime


#: `current_workflow` as the C method it wraps (a Python frame less, for the activity call).
workflow_or_none: Callable[[], WorkflowRuntime | None] = _workflow.get


def current_workflow() -> WorkflowRuntime | None:
    """The runtime of the workflow whose code is running, or None outside workflow code."""
    return _workflow.get()


def activity_runtime() -> ActivityRuntime:
    """What an activity call goes through here: the workflow's runtime, else the direct one."""
    runtime = _workflow.get() or _direct
    assert runtime is not None, "wfrun/__init__.py installs the direct runtime"
    return runtime


def require_workflow(call: str) -> WorkflowRuntime:
    runtime = _workflow.get()
    if runtime is None:
        raise UsageError(
            f"{call} can only be called from workflow code (inside a workflow's entrypoint "
            "and what it awaits), not from an activity or ordinary code"
        )
    return runtime


def current_activity() -> ActivityContext | None:
    """The running activity attempt's context, or None outside any activity."""
    return _activity.get()


def require_activity(call: str) -> ActivityContext:
    context = _activity.get()
    if context is None:
        raise UsageError(f"{call} can only be called from inside an activity")
    return context
