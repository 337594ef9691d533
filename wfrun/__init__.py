"""wfrun: durable async Python workflows on one machine, with no server.

Code written for Mistral Workflows runs with one changed line::

    import wfrun as workflows        # was: import mistralai.workflows as workflows

    @workflows.activity()
    async def fetch_user_data(user_id: str) -> dict: ...

    @workflows.workflow.define(name="user_report")
    class UserReportWorkflow:
        @workflows.workflow.entrypoint
        async def run(self, user_id: str) -> dict:
            return await fetch_user_data(user_id)

Run it with ``wfrun start app.py:UserReportWorkflow --arg user_id=42``, or from Python with
``await workflows.execute_workflow(UserReportWorkflow, {"user_id": "42"})``. Every event of the
run is appended to a history file; ``wfrun resume <run-id>`` continues after any crash, and no
completed activity runs again.
"""

from typing import TYPE_CHECKING, Any

from . import workflow
from ._version import __version__
from .activity import activity, activity_heartbeat, activity_info
from .concurrency import execute_activities_in_parallel
from .errors import (
    ActivityError,
    ApplicationError,
    DefinitionError,
    DeterminismWarning,
    EncodingError,
    HistoryCorruptError,
    HistoryIOError,
    InputError,
    NonDeterminismError,
    PayloadTooLargeError,
    RunLockedError,
    RunNotFoundError,
    TargetError,
    UsageError,
    WfrunError,
    WorkflowError,
    WorkflowFailedError,
)
from .execute import (
    cancel_workflow,
    execute_workflow,
    query_workflow,
    resume_workflow,
    signal_workflow,
    update_workflow,
)
from .local import DirectRuntime
from .policy import RateLimit, RetryPolicy
from .runs import SignalSent
from .runtime import ActivityInfo, WorkflowInfo, use_direct_runtime
from .workflow import InteractiveWorkflow

if TYPE_CHECKING:
    from .concurrency_types import ExtraItemParams, GetItemFromIndexParams

# An activity called outside any workflow runs here: its retry policy, no history.
use_direct_runtime(DirectRuntime())


def __getattr__(name: str) -> Any:
    # pydantic models, loaded on first use: `import wfrun` stays light for the command line.
    if name in ("ExtraItemParams", "GetItemFromIndexParams"):
        from . import concurrency_types

        return getattr(concurrency_types, name)
    raise AttributeError(f"module 'wfrun' has no attribute {name!r}")


__all__ = [
    "ActivityError",
    "ActivityInfo",
    "ApplicationError",
    "DefinitionError",
    "DeterminismWarning",
    "EncodingError",
    "ExtraItemParams",
    "GetItemFromIndexParams",
    "HistoryCorruptError",
    "HistoryIOError",
    "InputError",
    "InteractiveWorkflow",
    "NonDeterminismError",
    "PayloadTooLargeError",
    "RateLimit",
    "RetryPolicy",
    "RunLockedError",
    "RunNotFoundError",
    "SignalSent",
    "TargetError",
    "UsageError",
    "WfrunError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowInfo",
    "__version__",
    "activity",
    "activity_heartbeat",
    "activity_info",
    "cancel_workflow",
    "execute_activities_in_parallel",
    "execute_workflow",
    "query_workflow",
    "resume_workflow",
    "signal_workflow",
    "update_workflow",
    "workflow",
]
