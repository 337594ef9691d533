"""Durable runs from Python: start, resume, signal and query them, through the backend seam."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .backend import open_backend
from .clock import Clock
from .definitions import WorkflowDefinition, require_workflow_definition
from .errors import WfrunError, WorkflowError, WorkflowFailedError
from .loader import load_recorded, target_of
from .payload import dumps
from .runs import RunHistory, RunOutcome, RunStatus, SignalSent
from .runtime import current_workflow


async def execute_workflow(
    workflow: type,
    params: Any = None,
    *,
    execution_id: str | None = None,
    home: str | os.PathLike[str] | None = None,
    clock: Clock | None = None,
    max_payload: int | None = None,
) -> Any:
    """Run a workflow durably, in this process, and return its result.

    The same history file, guarantees and errors as ``wfrun start``: the run can be resumed
    with ``wfrun resume`` or `resume_workflow` if this process dies. ``params`` is an instance
    of the entrypoint's input model, or a dict of its arguments by name. With an
    ``execution_id`` that already exists, the call is idempotent: a completed run returns its
    recorded result without running anything, an incomplete one is resumed.

    Example::

        report = await workflows.execute_workflow(UserReportWorkflow, {"user_id": "42"})

    Called from workflow code, it starts a child run instead, as
    `workflows.workflow.execute_workflow` does (``home`` and ``clock`` are the parent's).

    Raises:
        WorkflowFailedError: the workflow failed; ``__cause__`` holds its error.
        InputError: ``params`` does not match the entrypoint's type hints (nothing ran).
    """
    definition = require_workflow_definition(workflow)
    parent = current_workflow()
    if parent is not None:
        return await parent.execute_child(definition, params, execution_id)
    outcome = await open_backend(home).start(
        definition,
        definition.encode_input(params),
        target=target_of(workflow),
        run_id=execution_id,
        clock=clock,
        max_payload=max_payload,
    )
    return result_of(definition, outcome)


async def resume_workflow(
    run_id: str, home: str | os.PathLike[str] | None = None, *, clock: Clock | None = None
) -> Any:
    """Continue an interrupted run (``wfrun resume`` from Python) and return its result.

    Example::

        report = await workflows.resume_workflow("user_report-20261124-101500-3f9a1c")
    """
    loaded: list[WorkflowDefinition] = []

    def find_workflow(history: RunHistory) -> None:
        loaded.append(load_recorded(history.started))

    outcome = await open_backend(home).resume(run_id, clock=clock, on_history=find_workflow)
    return result_of(loaded[0], outcome)


async def signal_workflow(
    run_id: str,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    resume: bool = True,
) -> SignalSent:
    """Send a signal to a run (``wfrun signal`` from Python); it is durable when this returns.

    ``payload`` holds the handler's arguments by name. A live run records the signal within a
    second; a run that no process runs is resumed in this process (``resume=False`` leaves
    that to the next resume), and `SignalSent.outcome` says how it went on.

    Example::

        await workflows.signal_workflow(run_id, "approve", {"approver": "ada"})
    """
    return await open_backend(home).signal(run_id, name, payload, resume=resume)


async def cancel_workflow(
    run_id: str,
    reason: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    resume: bool = True,
) -> SignalSent:
    """Cancel a run (``wfrun cancel`` from Python), delivered as a signal is.

    The workflow sees `asyncio.CancelledError` at its current await and may clean up; the run
    ends CANCELED when it lets the error through.
    """
    return await open_backend(home).cancel(run_id, reason, resume=resume)


async def update_workflow(
    run_id: str,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
) -> Any:
    """Send an update to a run (``wfrun update`` from Python) and return its handler's answer.

    Raises:
        WorkflowError: the validator refused the update, or its handler failed (``__cause__``
            holds the error); the run goes on either way.
    """
    answer = await open_backend(home).update(run_id, name, payload)
    if answer.pending:
        raise WfrunError(f"update {name!r} to run {run_id} is queued; the run has not answered yet")
    if answer.error is not None:
        how = "refused" if answer.rejected else "failed"
        raise WorkflowError(f"update {name!r} {how}: {answer.error.describe()}") from (
            answer.error.rebuild()
        )
    return answer.result


async def query_workflow(
    run_id: str,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
) -> Any:
    """Ask a run's query handler (``wfrun query`` from Python): its answer as JSON values.

    The history is replayed and the handler called: no activity runs, nothing is written.
    """
    return open_backend(home).query(run_id, name, payload)


def result_of(definition: WorkflowDefinition, outcome: RunOutcome) -> Any:
    """The typed result of a completed run; raise for any other ending."""
    if outcome.status is RunStatus.COMPLETED:
        return definition.decode_result(dumps(outcome.result))
    if outcome.status is RunStatus.BLOCKED:
        assert outcome.error is not None
        raise WfrunError(
            f"run {outcome.run_id} is BLOCKED: its workflow code raised "
            f"{outcome.error.describe()}; nothing recorded is lost: fix the code, then "
            f"resume_workflow({outcome.run_id!r})"
        ) from outcome.error.rebuild()
    if outcome.error is not None:  # FAILED, TIMED_OUT, CANCELED
        failure = WorkflowFailedError(
            f"run {outcome.run_id} of workflow {definition.name!r} failed: "
            f"{outcome.error.type}: {outcome.error.message}",
            run_id=outcome.run_id,
        )
        raise failure from outcome.error.rebuild()
    raise WfrunError(
        f"run {outcome.run_id} is {outcome.status}: {outcome.reason}; resume it later with "
        f"`wfrun resume {outcome.run_id}`"
    )
