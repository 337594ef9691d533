"""A Temporal workflow history as wfrun's events (`wfrun.events`): one source of truth.

``wfrun history``, ``show`` and the live view of ``start`` read a run on a cluster through the
same event types as a local history file, so they render it with the same code. Each Temporal
event becomes its wfrun counterpart; one with none (a workflow task, a terminated run, a cancel
request to an activity) becomes a `ForeignEvent` under Temporal's own name, shown rather than
skipped.

Command numbers (``seq``) are Temporal event ids: an activity's, timer's, marker's or child's
events carry the id of the event that started it, as Temporal itself pairs them. Temporal
records only an activity's last attempt (retries happen on the server), so an activity that
succeeded on attempt 3 shows one ``ActivityStarted`` with ``attempt`` 3 and no failed attempts.

Everything read here is data, never code: names, messages and payloads are only shown (the
renderer escapes them), and payloads are decoded as JSON, never unpickled or imported.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import Failure as FailureProto
from temporalio.api.history.v1 import HistoryEvent

from ..errors import Failure
from ..events import (
    FORMAT_VERSION,
    ActivityCanceled,
    ActivityCompleted,
    ActivityFailed,
    ActivityScheduled,
    ActivityStarted,
    ActivityTimedOut,
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Event,
    ForeignEvent,
    MarkerRecorded,
    RunBlocked,
    SignalReceived,
    TimerCanceled,
    TimerFired,
    TimerStarted,
    UpdateAccepted,
    UpdateCompleted,
    WorkflowCanceled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowTimedOut,
    format_ts,
)
from ..settings import DEFAULT_MAX_PAYLOAD

#: The memo key under which ``wfrun start --temporal`` records the TARGET it started, for
#: ``show`` only: a memo is written by whoever can start runs, so nothing is ever imported
#: from it (``replay --target`` names the code to replay against).
TARGET_MEMO: Final = "wfrun_target"
#: The memo key of the wfrun version that started the run (shown as ``wfrun_version``).
VERSION_MEMO: Final = "wfrun_version"

#: Workflow task failures that mean the workflow code must be fixed (a bug, non-determinism,
#: a command the server refuses): the run is BLOCKED, as locally. Other causes (a signal that
#: came in during the task, a sticky queue reset) are Temporal's own business and pass.
_BUG_CAUSES: Final = frozenset(
    {
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR,
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PAYLOADS_TOO_LARGE,
    }
)


def is_bug(cause: int) -> bool:
    """Whether a workflow task failed with ``cause`` because of the workflow's code."""
    name = _CAUSE_NAMES.get(cause, "")
    return cause in _BUG_CAUSES or name.startswith("WORKFLOW_TASK_FAILED_CAUSE_BAD_")


_CAUSE_NAMES: Final = {int(value): name for name, value in WorkflowTaskFailedCause.items()}


def payload_value(payload: Payload) -> Any:
    """A payload as a JSON value: wfrun's JSON (and any SDK's ``json/plain``) decoded, anything
    else described, never deserialized otherwise."""
    encoding = payload.metadata.get("encoding", b"")
    if encoding in (b"json/plain", b"json/protobuf"):
        try:
            return orjson.loads(payload.data)
        except orjson.JSONDecodeError:
            return payload.data.decode(errors="replace")
    if encoding == b"binary/null":
        return None
    if encoding == b"binary/plain":
        return {"base64": base64.b64encode(payload.data).decode()}
    return f"<{encoding.decode(errors='replace') or 'unknown'} payload, {len(payload.data)} bytes>"


def payloads_value(payloads: Payloads) -> Any:
    """The single payload wfrun sends (None for none; a list if another SDK sent several)."""
    values = [payload_value(p) for p in payloads.payloads]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def arguments(payloads: Payloads) -> dict[str, Any]:
    """An input as wfrun records it: the JSON object of arguments by name. Another SDK's
    positional arguments are kept under ``args``."""
    value = payloads_value(payloads)
    if isinstance(value, dict):
        return value
    return {} if value is None else {"args": value if isinstance(value, list) else [value]}


def failure_of(proto: FailureProto) -> Failure:
    """A Temporal failure as wfrun records one: the original type name, message, traceback."""
    if proto.HasField("application_failure_info"):
        kind = proto.application_failure_info.type or "ApplicationError"
        retryable = not proto.application_failure_info.non_retryable
    elif proto.HasField("timeout_failure_info"):
        kind, retryable = "TimeoutError", True
    elif proto.HasField("canceled_failure_info"):
        kind, retryable = "CancelledError", True
    elif proto.HasField("activity_failure_info"):
        kind, retryable = "ActivityError", True
    elif proto.HasField("child_workflow_execution_failure_info"):
        kind, retryable = "ChildWorkflowError", True
    elif proto.HasField("terminated_failure_info"):
        kind, retryable = "Terminated", True
    else:
        kind, retryable = "Error", True
    message = proto.message
    if proto.HasField("cause") and kind in ("ActivityError", "ChildWorkflowError"):
        # Temporal's wrapper says only "Activity task failed": the cause is what happened.
        message = f"{message}: {failure_of(proto.cause).describe()}"
    return Failure(kind, message, not retryable, proto.stack_trace or None)


def _seconds(duration: Any) -> float:
    return float(duration.ToTimedelta().total_seconds())


def _camel(enum_name: str) -> str:
    """``EVENT_TYPE_WORKFLOW_TASK_FAILED`` → ``WorkflowTaskFailed``."""
    words = enum_name.removeprefix("EVENT_TYPE_").split("_")
    return "".join(word.capitalize() for word in words)


@dataclass
class Converter:
    """Turns one run's Temporal events into wfrun events, in order (it remembers what later
    events refer to: an activity's start, a timer's duration, the run's start)."""

    workflow_id: str
    #: The attempt and start time of each activity, by its scheduled event id.
    _started: dict[int, tuple[int, datetime]] = field(default_factory=dict)
    _scheduled: dict[int, HistoryEvent] = field(default_factory=dict)
    _execution_timeout: float = 0.0
    _cancel_reason: str | None = None

    def convert(self, event: HistoryEvent) -> Event:
        when = event.event_time.ToDatetime().replace(tzinfo=None)
        ts = format_ts(_utc(when))
        base: dict[str, Any] = {"id": event.event_id, "ts": ts}
        kind = event.event_type
        e = EventType
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            a = event.workflow_execution_started_event_attributes
            self._execution_timeout = _seconds(a.workflow_execution_timeout)
            memo = a.memo.fields
            target = payload_value(memo[TARGET_MEMO]) if TARGET_MEMO in memo else ""
            version = payload_value(memo[VERSION_MEMO]) if VERSION_MEMO in memo else ""
            return WorkflowStarted(
                **base,
                format=FORMAT_VERSION,
                run_id=self.workflow_id,
                workflow=a.workflow_type.name,
                target=target if isinstance(target, str) else "",
                input=payloads_value(a.input) if a.input.payloads else {},
                wfrun_version=version if isinstance(version, str) else "",
                seed=0,
                cwd="",
                max_payload=DEFAULT_MAX_PAYLOAD,
                execution_timeout=self._execution_timeout or None,
                parent=a.parent_workflow_execution.workflow_id or None,
                continued_from=a.continued_execution_run_id or None,
            )
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            result = payloads_value(event.workflow_execution_completed_event_attributes.result)
            return WorkflowCompleted(**base, result=result)
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = failure_of(event.workflow_execution_failed_event_attributes.failure)
            return WorkflowFailed(**base, error=failure.record())
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
            return WorkflowTimedOut(**base, timeout=self._execution_timeout)
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            self._cancel_reason = event.workflow_execution_cancel_requested_event_attributes.cause
            return CancelRequested(
                **base, message=str(event.event_id), reason=self._cancel_reason or None
            )
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
            return WorkflowCanceled(**base, reason=self._cancel_reason or None)
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            a2 = event.workflow_execution_continued_as_new_event_attributes
            return WorkflowContinuedAsNew(
                **base, run_id=a2.new_execution_run_id, input=payloads_value(a2.input)
            )
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            a3 = event.workflow_execution_signaled_event_attributes
            return SignalReceived(
                **base, message=str(event.event_id), name=a3.signal_name, input=arguments(a3.input)
            )
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            a4 = event.workflow_execution_update_accepted_event_attributes
            request = a4.accepted_request
            return UpdateAccepted(
                **base,
                message=request.meta.update_id or a4.protocol_instance_id,
                name=request.input.name,
                input=arguments(request.input.args),
            )
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            a5 = event.workflow_execution_update_completed_event_attributes
            outcome = a5.outcome
            if outcome.HasField("failure"):
                return UpdateCompleted(
                    **base, message=a5.meta.update_id, error=failure_of(outcome.failure).record()
                )
            return UpdateCompleted(
                **base, message=a5.meta.update_id, result=payloads_value(outcome.success)
            )
        if kind == e.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            a6 = event.workflow_task_failed_event_attributes
            if is_bug(a6.cause):
                return RunBlocked(**base, error=failure_of(a6.failure).record())
            cause = _CAUSE_NAMES.get(a6.cause, "").removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
            return self._foreign(event, base, f"{cause}: {a6.failure.message}".rstrip(": "))
        return self._step(event, base, when)

    def _step(self, event: HistoryEvent, base: dict[str, Any], when: datetime) -> Event:
        kind = event.event_type
        e = EventType
        if kind == e.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = event.activity_task_scheduled_event_attributes
            self._scheduled[event.event_id] = event
            return ActivityScheduled(
                **base, seq=event.event_id, name=a.activity_type.name, input=arguments(a.input)
            )
        if kind == e.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            b = event.activity_task_started_event_attributes
            self._started[b.scheduled_event_id] = (b.attempt, when)
            return ActivityStarted(**base, seq=b.scheduled_event_id, attempt=b.attempt)
        if kind == e.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            c = event.activity_task_completed_event_attributes
            attempt, took = self._attempt(c.scheduled_event_id, when)
            return ActivityCompleted(
                **base,
                seq=c.scheduled_event_id,
                attempt=attempt,
                duration=took,
                result=payloads_value(c.result),
            )
        if kind == e.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            f = event.activity_task_failed_event_attributes
            attempt, took = self._attempt(f.scheduled_event_id, when)
            return ActivityFailed(
                **base,
                seq=f.scheduled_event_id,
                attempt=attempt,
                duration=took,
                error=failure_of(f.failure).record(),
                retry_in=None,  # Temporal records an activity's final failure only
            )
        if kind == e.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            t = event.activity_task_timed_out_event_attributes
            attempt, took = self._attempt(t.scheduled_event_id, when)
            which, limit = self._timeout(t.scheduled_event_id, t.failure)
            return ActivityTimedOut(
                **base,
                seq=t.scheduled_event_id,
                attempt=attempt,
                duration=took,
                timeout=which,
                limit=limit,
                retry_in=None,
                message=failure_of(t.failure).describe(),
            )
        if kind == e.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            seq = event.activity_task_canceled_event_attributes.scheduled_event_id
            return ActivityCanceled(**base, seq=seq)
        if kind == e.EVENT_TYPE_TIMER_STARTED:
            s = event.timer_started_event_attributes
            seconds = _seconds(s.start_to_fire_timeout)
            due = format_ts(_utc(when) + timedelta(seconds=seconds))
            return TimerStarted(**base, seq=event.event_id, duration=seconds, due=due)
        if kind == e.EVENT_TYPE_TIMER_FIRED:
            seq = event.timer_fired_event_attributes.started_event_id
            return TimerFired(**base, seq=seq)
        if kind == e.EVENT_TYPE_TIMER_CANCELED:
            seq = event.timer_canceled_event_attributes.started_event_id
            return TimerCanceled(**base, seq=seq)
        if kind == e.EVENT_TYPE_MARKER_RECORDED:
            m = event.marker_recorded_event_attributes
            value = {key: payloads_value(p) for key, p in m.details.items()}
            return MarkerRecorded(**base, seq=event.event_id, name=m.marker_name, value=value)
        return self._child(event, base)

    def _child(self, event: HistoryEvent, base: dict[str, Any]) -> Event:
        kind = event.event_type
        e = EventType
        if kind == e.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            i = event.start_child_workflow_execution_initiated_event_attributes
            return ChildWorkflowStarted(
                **base,
                seq=event.event_id,
                workflow=i.workflow_type.name,
                run_id=i.workflow_id,
                target="",
                input=payloads_value(i.input) if i.input.payloads else {},
            )
        if kind == e.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
            c = event.child_workflow_execution_completed_event_attributes
            return ChildWorkflowCompleted(
                **base,
                seq=c.initiated_event_id,
                run_id=c.workflow_execution.workflow_id,
                result=payloads_value(c.result),
            )
        ended = {
            e.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "FAILED",
            e.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "TIMED_OUT",
            e.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "CANCELED",
            e.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "TERMINATED",
        }
        if kind in ended:
            status = ended[kind]
            which = event.WhichOneof("attributes")
            assert which is not None
            attributes = getattr(event, which)
            if status == "FAILED":
                error = failure_of(attributes.failure)
            else:
                error = Failure(
                    "TimeoutError" if status == "TIMED_OUT" else "CancelledError",
                    f"the child run ended {status}",
                )
            return ChildWorkflowFailed(
                **base,
                seq=attributes.initiated_event_id,
                run_id=attributes.workflow_execution.workflow_id,
                status=status,
                error=error.record(),
            )
        if kind == e.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
            s = event.start_child_workflow_execution_failed_event_attributes
            return ChildWorkflowFailed(
                **base,
                seq=s.initiated_event_id,
                run_id=s.workflow_id,
                status="FAILED",
                error=Failure("ChildWorkflowError", f"could not start: {s.cause}").record(),
            )
        detail = ""
        if kind == e.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            detail = event.workflow_execution_terminated_event_attributes.reason
        return self._foreign(event, base, detail)

    def _foreign(self, event: HistoryEvent, base: dict[str, Any], detail: str) -> ForeignEvent:
        return ForeignEvent(**base, type=_camel(EventType.Name(event.event_type)), detail=detail)

    def _attempt(self, scheduled: int, when: datetime) -> tuple[int, float]:
        attempt, since = self._started.get(scheduled, (1, when))
        return attempt, max((when - since).total_seconds(), 0.0)

    def _timeout(self, scheduled: int, failure: FailureProto) -> tuple[str, float]:
        """Which timeout expired (``start_to_close``, ``heartbeat``, ...) and its limit."""
        proto = failure
        while not proto.HasField("timeout_failure_info") and proto.HasField("cause"):
            proto = proto.cause
        which = "unspecified"
        if proto.HasField("timeout_failure_info"):
            kind = proto.timeout_failure_info.timeout_type
            which = TimeoutType.Name(kind).removeprefix("TIMEOUT_TYPE_").lower()
        found = self._scheduled.get(scheduled)
        limit = 0.0
        if found is not None:
            a = found.activity_task_scheduled_event_attributes
            field_name = f"{which}_timeout"
            if which != "unspecified" and a.HasField(field_name):  # type: ignore[arg-type]
                limit = _seconds(getattr(a, field_name))
        return which, limit


def _utc(moment: datetime) -> datetime:
    """Temporal's times are UTC, handed over without their zone."""
    return moment.replace(tzinfo=UTC)


def event_json(event: Event) -> bytes:
    """A converted event as one JSON object (``history --json --temporal``): wfrun's fields,
    with no checksum, which only a file needs."""
    return orjson.dumps(event)
