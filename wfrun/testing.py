"""Helpers for users' own tests: replay saved histories offline, and skip waiting.

Keep the histories of a few real runs beside your tests and replay them against today's code
in CI: a change that would break runs in flight fails the build, with no server involved::

    from wfrun.testing import replay

    def test_todays_code_still_replays_last_months_runs():
        for path in Path("tests/histories").glob("*.jsonl"):
            replay(path, UserReportWorkflow)   # raises NonDeterminismError on a mismatch

`FakeClock` makes durable timers and retry delays pass at once, while keeping the times the
workflow sees consistent::

    clock = FakeClock()
    await workflows.execute_workflow(Reminder, {"days": 30}, clock=clock)
    assert clock.slept == [30 * 24 * 3600]

`run_workflow` runs a workflow durably with some activities replaced by stand-ins, by name,
on a `FakeClock`, and returns the result with every call the stand-ins received;
`mock_activities` does the same around your own ``await workflows.execute_workflow(...)``::

    run = run_workflow(UserReportWorkflow, {"user_id": "42"},
                       activities={"fetch_user_data": lambda user_id: {"name": "Ada", ...}})
    assert run.result["user"] == "Ada"
    assert run.calls[0].arguments == {"user_id": "42"}

The pytest plugin (`wfrun.pytest_plugin`, loaded by pytest on its own) gives these as
fixtures: ``wfrun_home``, ``wfrun_clock``, ``wfrun_replay``, ``wfrun_run``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import definitions
from .definitions import require_workflow_definition
from .errors import UsageError
from .execute import execute_workflow
from .local.backend import replay_history
from .local.history import parse_history
from .overrides import ActivityCall, substituted
from .runs import ReplayResult

__all__ = [
    "ActivityCall",
    "FakeClock",
    "ReplayResult",
    "WorkflowRun",
    "mock_activities",
    "replay",
    "run_workflow",
]


def replay(history: str | os.PathLike[str], workflow: type) -> ReplayResult:
    """Replay a saved history file against ``workflow``'s code, running no activity.

    Raises:
        NonDeterminismError: the code asks for something else than the history recorded.
        HistoryCorruptError: the file is not a valid history.
    """
    path = Path(history)
    # Of a call's first attempt, a replay reads only the completion: no start built for it.
    parsed = parse_history(path, path.read_bytes(), keep_stored=False, keep_starts=False)
    return replay_history(parsed, require_workflow_definition(workflow))


class FakeClock:
    """A clock that skips waiting: time jumps to the next due wait as soon as nothing else runs.

    Concurrent waits keep their order on one timeline (a 5 s timer fires before a 60 s one,
    whichever was started first). Only the engine's waits (durable timers, retry delays, the
    execution deadline) are skipped; activities still take real time.

    Attributes:
        slept: every wait the engine asked for, in seconds, in the order it asked.
    """

    #: Loop turns to let every runnable task reach its next wait before time jumps.
    SETTLE = 20

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.slept: list[float] = []
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._advancer: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward, as if ``seconds`` had passed outside any wait."""
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        due = self._now + timedelta(seconds=seconds)
        heapq.heappush(self._waiters, (due, next(self._order), waiter))
        if self._advancer is None or self._advancer.done():
            self._advancer = loop.create_task(self._advance())
        await waiter

    async def _advance(self) -> None:
        while self._waiters:
            for _ in range(self.SETTLE):
                await asyncio.sleep(0)
            due, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                self._now = max(self._now, due)
                waiter.set_result(None)


@dataclass(slots=True)
class WorkflowRun:
    """What `run_workflow` returns: the result, and what the stand-ins were called with."""

    run_id: str
    result: Any
    #: Every attempt of a substituted activity, in order: ``ActivityCall(name, arguments)``.
    calls: list[ActivityCall] = field(default_factory=list)
    #: The clock the run saw: ``clock.slept`` lists the timers and retry delays it skipped.
    clock: FakeClock | None = None

    def calls_to(self, name: str) -> list[dict[str, Any]]:
        """The arguments (by name) of each call to the activity ``name``."""
        return [call.arguments for call in self.calls if call.name == name]


@contextmanager
def mock_activities(stand_ins: Mapping[str, Callable[..., Any]]) -> Iterator[list[ActivityCall]]:
    """Within this block, activities named in ``stand_ins`` run the stand-in instead.

    A stand-in is called with the activity's arguments and may be a plain function or a
    coroutine function, whatever the activity is; what it returns (or raises) is the
    attempt's outcome, checked and recorded as the activity's own would be. Only code run
    from this block (and the tasks and threads it starts) sees the stand-ins, so concurrent
    tests do not mix. Yields the list of calls, which fills as the stand-ins are called.

    Raises:
        UsageError: a name that no defined activity has (a typo would run the real one).
    """
    known = set(definitions._ACTIVITY_CODE.values())
    unknown = sorted(set(stand_ins) - known)
    if unknown:
        raise UsageError(
            f"no activity is named {', '.join(map(repr, unknown))}: activities are mocked by "
            f"the name they are defined with (defined: {', '.join(sorted(known)) or 'none'})"
        )
    with substituted(stand_ins) as substitutes:
        yield substitutes.calls


def run_workflow(
    workflow: type,
    params: Any = None,
    *,
    activities: Mapping[str, Callable[..., Any]] | None = None,
    clock: FakeClock | None = None,
    execution_id: str | None = None,
    home: str | os.PathLike[str] | None = None,
) -> WorkflowRun:
    """Run ``workflow`` durably to its end, from a (synchronous) test, with stand-ins for some
    activities by name (see `mock_activities`), on a `FakeClock` so that timers pass at once.

    The run is a real one: its history is written under ``home`` (else ``$WFRUN_HOME``, as
    the ``wfrun_home`` fixture sets it) and can be replayed. In an ``async`` test, use
    ``with mock_activities(...):`` around ``await workflows.execute_workflow(...)`` instead.

    Raises:
        WorkflowFailedError: the workflow failed (as `execute_workflow` raises it).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise UsageError(
            "run_workflow() runs its own event loop: in an async test, use "
            "`with mock_activities(...):` around `await workflows.execute_workflow(...)`"
        )
    require_workflow_definition(workflow)
    run_id = execution_id or f"test-{uuid.uuid4().hex[:12]}"
    clock = clock or FakeClock()
    with mock_activities(activities or {}) as calls:
        result = asyncio.run(
            execute_workflow(workflow, params, execution_id=run_id, home=home, clock=clock)
        )
    return WorkflowRun(run_id=run_id, result=result, calls=calls, clock=clock)
