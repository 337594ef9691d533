"""The direct runtime: an activity called from ordinary code, outside any workflow.

It runs the call as a workflow would, with the same input checks and the same retry loop
(`wfrun.local.attempts.attempt_until_final`), but records nothing. When every attempt fails,
the last attempt's own exception is raised (a ``TimeoutError`` for a timeout), as a unit test
of the activity expects.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from types import CoroutineType
from typing import Any

from .. import settings
from ..clock import Clock, SystemClock
from ..definitions import ActivityDefinition
from ..payload import check_size, encode_arguments
from ..runtime import ActivityInfo
from .attempts import Heartbeats, attempt_until_final


class DirectRuntime:
    """Runs activities called outside any workflow: retries, checks, no history."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    def call_activity(
        self, definition: ActivityDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        call = self._run(definition, args, kwargs)
        # Python's "coroutine ... was never awaited" warning then names the activity.
        if isinstance(call, CoroutineType):
            call.__name__ = call.__qualname__ = definition.name
        return call

    async def _run(
        self, definition: ActivityDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        options = definition.options
        limit = options.max_payload or settings.max_payload()
        arguments = definition.signature.bind(args, kwargs)
        data = encode_arguments(arguments, subject=f"activity {definition.name!r}")
        check_size(data, limit=limit, activity=definition.name, side="input")
        values = definition.signature.decode_input(data)
        run_id = f"local-{uuid.uuid4().hex[:12]}"
        info = ActivityInfo(
            run_id=run_id,
            activity_id=1,
            name=definition.name,
            attempt=1,
            idempotency_key=f"{run_id}/1",
            start_to_close_timeout=options.start_to_close_timeout,
            heartbeat_timeout=options.heartbeat_timeout,
        )
        timeout = options.schedule_to_close_timeout
        _, outcome = await attempt_until_final(
            definition,
            values,
            info,
            max_payload=limit,
            heartbeats=Heartbeats(),
            clock=self._clock,
            deadline=self._clock.now() + timeout if timeout is not None else None,
        )
        if not outcome.ok:
            assert outcome.exception is not None
            raise outcome.exception
        return outcome.value
