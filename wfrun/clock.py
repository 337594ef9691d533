"""Where wfrun gets the time: a seam, so that tests and users' tests can skip waiting.

The engine reads the wall clock only through a `Clock`: event timestamps, timer due times,
retry backoff. `wfrun.testing.FakeClock` makes a one-hour durable timer pass at once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


async def sleep_until(clock: Clock, due: datetime) -> None:
    """Wait until ``due`` (at once when it is past): how a resumed timer waits only the rest."""
    await clock.sleep((due - clock.now()).total_seconds())
