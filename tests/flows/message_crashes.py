"""A workflow whose message handlers do durable work, for tests/test_message_crashes.py.

Every kind of message (a signal, an update, a cancel) ends in the same work: an activity that
logs ``note-<item>`` (the side effect that must happen once), then one that logs
``in-<item>`` and may be held there (`flows.steps.reached`), so that a test can kill the
process inside the handler once ``note`` has completed. The items taken in are the
workflow's state, which the ``tally`` query shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import wfrun as workflows

from flows.messages import announce
from flows.steps import log_attempt, reached


@workflows.activity
async def note(item: str) -> str:
    """The handler's side effect: it must run once per message, whatever is killed when."""
    log_attempt(f"note-{item}")
    return item


@workflows.activity
async def pause(item: str) -> None:
    """Where a test holds a process inside a handler (``WFRUN_TEST_HOLD=in-<item>``)."""
    await reached(f"in-{item}")


@workflows.workflow.define(name="tally")
class TallyWorkflow:
    """Takes items in by signal (``add``) or update (``add_now``) until ``finish``; a cancel
    takes in ``cleanup`` (its compensation) and ends the run CANCELED."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.done = False
        #: Handlers still running: the run ends only once each has finished its work.
        self.busy = 0

    @workflows.workflow.entrypoint
    async def run(self, marker: str = "") -> list[str]:
        try:
            if marker:
                await announce(marker)
            # The timeout only keeps a started process live (it is within the default
            # --max-wait); no test waits for it.
            await workflows.workflow.wait_condition(lambda: self.done and not self.busy, timeout=50)
        except asyncio.CancelledError:
            await self._take_in("cleanup")
            raise
        return self.items

    async def _take_in(self, item: str) -> int:
        self.busy += 1
        try:
            await note(item)
            await pause(item)
            self.items.append(item)
            return len(self.items)
        finally:
            self.busy -= 1

    @workflows.workflow.signal
    async def add(self, item: str) -> None:
        await self._take_in(item)

    @workflows.workflow.update
    async def add_now(self, item: str) -> int:
        return await self._take_in(item)

    @workflows.workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflows.workflow.query
    def tally(self) -> list[str]:
        return self.items


#: Called by the activity of `ProbedWorkflow`'s handler as it runs: a test's look at what is
#: durable when the handler's first effect leaves the run.
PROBES: list[Callable[[], None]] = []


@workflows.activity
async def probe_durability() -> None:
    for probe in PROBES:
        probe()


@workflows.workflow.define(name="probed")
class ProbedWorkflow:
    """Ends at its first ``poke``, whose handler first runs an activity that runs the test's
    probes."""

    def __init__(self) -> None:
        self.poked = False

    @workflows.workflow.entrypoint
    async def run(self) -> bool:
        await workflows.workflow.wait_condition(lambda: self.poked)
        return self.poked

    @workflows.workflow.signal
    async def poke(self) -> None:
        await probe_durability()
        self.poked = True
