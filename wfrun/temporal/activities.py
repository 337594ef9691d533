"""wfrun activities as Temporal activities: one attempt each, run as wfrun runs one locally.

Each `ActivityDefinition` becomes a Temporal activity of the same name whose one argument is
the JSON object of the call's arguments by name and whose result is the encoded result. The
attempt itself is wfrun's (`wfrun.local.attempts.run_attempt`): the same thread pool for plain
``def`` activities, the same result checks (JSON, payload limit, return annotation) and the
same timeout messages; Temporal's server keeps the retry schedule and the timeouts too, so an
attempt lost with its worker is retried elsewhere.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.common import RawValue

from ..definitions import ActivityDefinition
from ..errors import Failure, WfrunError
from ..local.attempts import Heartbeats, run_attempt
from ..payload import loads
from ..runtime import ActivityInfo
from .converter import payload
from .failures import to_temporal


class _ForwardedHeartbeats(Heartbeats):
    """Every beat also goes to Temporal (with or without details), from the activity's context."""

    __slots__ = ("_send",)

    def __init__(self, encoded: bytes, send: Callable[[bytes | None], None]) -> None:
        super().__init__(encoded=encoded)
        self._send = send

    def beat(self, encoded: bytes | None, at: float) -> None:
        super().beat(encoded, at)
        self._send(encoded)


def temporal_activity(
    definition: ActivityDefinition, *, max_payload: int
) -> Callable[[RawValue], Awaitable[RawValue]]:
    """The Temporal activity that runs ``definition``'s attempts."""
    limit = definition.options.max_payload or max_payload
    policy = definition.options.retry_policy

    async def attempt(arguments: RawValue) -> RawValue:
        temporal_info = activity.info()
        try:
            values = definition.signature.decode_input(arguments.payload.data)
        except WfrunError as exc:  # the workflow side checked it: the code changed since
            raise to_temporal(
                Failure.of(exc), attempt=temporal_info.attempt, non_retryable=True
            ) from None
        last = _last_details(temporal_info.heartbeat_details)
        info = ActivityInfo(
            run_id=temporal_info.workflow_id or "",
            activity_id=int(temporal_info.activity_id)
            if temporal_info.activity_id.isdigit()
            else 0,
            name=definition.name,
            attempt=temporal_info.attempt,
            # Temporal's run id, not the workflow id: a workflow id may be used again by a
            # later run, which must not share keys with this one.
            idempotency_key=f"{temporal_info.workflow_run_id}-{temporal_info.activity_id}",
            workflow_name=temporal_info.workflow_type,
            heartbeat_details=tuple(loads(last)) if last else (),
            start_to_close_timeout=temporal_info.start_to_close_timeout,
            heartbeat_timeout=temporal_info.heartbeat_timeout,
        )
        context = contextvars.copy_context()  # Temporal's activity context, for the beats

        def send(encoded: bytes | None) -> None:
            details = (payload(encoded),) if encoded is not None else ()
            context.run(activity.heartbeat, *details)

        outcome = await run_attempt(
            definition,
            values,
            info,
            max_payload=limit,
            heartbeats=_ForwardedHeartbeats(last, send),
        )
        if outcome.ok:
            assert outcome.result is not None
            return payload(outcome.result)
        assert outcome.error is not None
        retryable = policy.is_retryable(outcome.type_names, outcome.non_retryable)
        raise to_temporal(outcome.error, attempt=info.attempt, non_retryable=not retryable)

    attempt.__name__ = attempt.__qualname__ = definition.name
    return activity.defn(name=definition.name)(attempt)


def _last_details(details: Any) -> bytes:
    """The encoded details of the last heartbeat (a JSON list), or b"" when there were none."""
    if not details:
        return b""
    from ..payload import encode

    return encode(details[0], subject="heartbeat details")
