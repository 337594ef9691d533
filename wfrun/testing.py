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
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .definitions import require_workflow_definition
from .local.backend import replay_history
from .local.history import parse_history
from .runs import ReplayResult

__all__ = ["FakeClock", "ReplayResult", "replay"]


def replay(history: str | os.PathLike[str], workflow: type) -> ReplayResult:
    """Replay a saved history file against ``workflow``'s code, running no activity.

    Raises:
        NonDeterminismError: the code asks for something else than the history recorded.
        HistoryCorruptError: the file is not a valid history.
    """
    path = Path(history)
    parsed = parse_history(path, path.read_bytes())
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
