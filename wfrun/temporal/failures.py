"""Errors both ways between wfrun and Temporal.

An activity's failure travels as Temporal's ``ApplicationError`` whose ``type`` is the
original exception's type name (wfrun's `Failure`), ``non_retryable`` set by wfrun's rules (the
exception's own flag, or a type or base type the retry policy lists), and one detail: a JSON
object with the attempt number, the original traceback and, for a `PayloadTooLargeError`, its
attributes. The workflow sees what it sees locally: `wfrun.ActivityError` whose ``__cause__``
is an `ApplicationError` named like the original.
"""

from __future__ import annotations

from typing import Any

from temporalio import exceptions as temporal

from ..definitions import ActivityDefinition
from ..errors import ActivityError, Failure, PayloadTooLargeError, WorkflowFailedError


def to_temporal(
    failure: Failure, *, attempt: int, non_retryable: bool
) -> temporal.ApplicationError:
    """The Temporal error an activity attempt raises for ``failure``."""
    detail: dict[str, Any] = {"attempt": attempt}
    if failure.traceback:
        detail["traceback"] = failure.traceback
    if failure.payload is not None:
        detail["payload"] = failure.payload
    return temporal.ApplicationError(
        failure.message, detail, type=failure.type, non_retryable=non_retryable
    )


def failure_of(error: BaseException) -> tuple[Failure, dict[str, Any]]:
    """The wfrun `Failure` a Temporal failure stands for, and its detail object (may be empty)."""
    if isinstance(error, temporal.ApplicationError):
        detail = _detail(error)
        payload = detail.get("payload")
        traceback = detail.get("traceback")
        return (
            Failure(
                type=error.type or "ApplicationError",
                message=error.message,
                non_retryable=error.non_retryable,
                traceback=traceback if isinstance(traceback, str) else None,
                payload=payload if isinstance(payload, dict) else None,
            ),
            detail,
        )
    if isinstance(error, temporal.TimeoutError):
        kind = error.type.name.lower() if error.type is not None else "start_to_close"
        return Failure("TimeoutError", f"ran past its {kind} timeout"), {}
    if isinstance(error, temporal.CancelledError):
        return Failure("CancelledError", error.message or "cancelled"), {}
    if isinstance(error, temporal.FailureError):
        return Failure(type(error).__name__, error.message), {}
    return Failure.of(error), {}


def activity_error(
    error: temporal.ActivityError, definition: ActivityDefinition
) -> ActivityError | PayloadTooLargeError:
    """What workflow code sees for a failed activity call: as locally, `ActivityError` with
    the original type and message as its ``__cause__`` (or the `PayloadTooLargeError`)."""
    cause = error.cause
    failure, detail = (
        failure_of(cause) if cause is not None else (Failure("Error", error.message), {})
    )
    too_large = failure.rebuild_payload_error()
    if too_large is not None:
        return too_large
    state = error.retry_state.name if error.retry_state is not None else "NON_RETRYABLE_FAILURE"
    state = state.removeprefix("RETRY_STATE_")
    if state not in ("NON_RETRYABLE_FAILURE", "MAXIMUM_ATTEMPTS_REACHED", "TIMEOUT"):
        state = "NON_RETRYABLE_FAILURE"  # the same three names as locally
    attempts = detail.get("attempt")
    if not isinstance(attempts, int):
        policy = definition.options.retry_policy
        reached = state == "MAXIMUM_ATTEMPTS_REACHED" and policy.maximum_attempts
        attempts = policy.maximum_attempts if reached else 1
    wrapped = ActivityError(
        f"activity {definition.name!r} failed after {attempts} "
        f"attempt{'s' if attempts != 1 else ''}: {failure.describe()}",
        activity=definition.name,
        activity_id=_int(error.activity_id),
        attempts=attempts,
        retry_state=state,
    )
    wrapped.__cause__ = failure.rebuild()
    return wrapped


def child_error(error: temporal.ChildWorkflowError, workflow: str) -> WorkflowFailedError:
    """What workflow code sees for a child run that did not complete."""
    cause = error.cause
    failure = failure_of(cause)[0] if cause is not None else Failure("Error", error.message)
    status = "FAILED"
    if isinstance(cause, temporal.CancelledError):
        status = "CANCELED"
    elif isinstance(cause, temporal.TimeoutError):
        status = "TIMED_OUT"
    elif isinstance(cause, temporal.TerminatedError):
        status = "TERMINATED"
    wrapped = WorkflowFailedError(
        f"child run {error.workflow_id} of workflow {workflow!r} ended {status}: "
        f"{failure.describe()}",
        run_id=error.workflow_id,
    )
    wrapped.__cause__ = failure.rebuild()
    return wrapped


def _detail(error: temporal.ApplicationError) -> dict[str, Any]:
    details = error.details
    first = details[0] if details else None
    return first if isinstance(first, dict) else {}


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0
