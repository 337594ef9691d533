"""Workflow code that calls what it should not: the guard rails name each line."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from datetime import datetime
from time import time as clock
from typing import ClassVar

import wfrun as workflows

from flows.steps import step


async def impure_body() -> list[object]:
    stamp = time.time()  # IMPURE time.time
    today = datetime.now()  # IMPURE datetime.now
    roll = random.random()  # IMPURE random.random
    ident = uuid.uuid4()  # IMPURE uuid.uuid4
    await asyncio.sleep(0.01)  # PURE: a durable timer, as workflow.sleep
    pick = random.choice([1, 2])  # IMPURE random.choice
    fine = workflows.workflow.random().choice([1, 2])  # PURE: the run's own generator
    return [stamp > 0, today.year > 2000, 0 <= roll < 1, ident.version, pick in (1, 2), fine]


@workflows.workflow.define(name="impure")
class ImpureWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> list[object]:
        return await impure_body()


@workflows.workflow.define(name="impure_quiet", determinism_warnings=False)
class QuietImpureWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> list[object]:
        return await impure_body()


#: datetime.now under another name: the guard knows the function, not how the code spells it.
right_now = datetime.now


@workflows.workflow.define(name="impure_aliased")
class AliasedImpureWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> list[object]:
        stamp = clock()  # IMPURE aliased time.time
        moment = right_now()  # IMPURE aliased datetime.now
        return [stamp > 0, moment.year > 2000]


async def doubled(n: int) -> int:
    return 2 * await step(n)


@workflows.workflow.define(name="unordered")
class UnorderedWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> list[int]:
        return [await c for c in asyncio.as_completed([doubled(1), doubled(2)])]  # IMPURE order


@workflows.workflow.define(name="chatty")
class ChattyWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, count: int) -> int:
        for i in range(1, count + 1):
            await step(i)
            workflows.workflow.logger.info("finished step %d", i)
        return count


@workflows.workflow.define(name="eager_logger")
class EagerLoggerWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        workflows.workflow.logger.info("starting")  # before any activity: a live line
        value = await step(1)
        workflows.workflow.logger.info("done")
        return value


def steady_clock() -> float:
    return 0.0


@workflows.workflow.define(name="impure_late")
class LateImpureWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> list[float]:
        # One call site, first seen calling a harmless function, then time.time itself.
        return [now() for now in (steady_clock, time.time)]  # IMPURE late time.time


@workflows.activity
async def stamped() -> float:
    return time.time()  # PURE: an activity's own call, recorded in the history


@workflows.workflow.define(name="impure_in_activity")
class ActivityClockWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> float:
        return await stamped()


def read_clock() -> float:
    return time.time()  # IMPURE shared time.time (from the workflow; fine from the activity)


@workflows.activity
async def clock_reading() -> float:
    return read_clock()


@workflows.workflow.define(name="impure_shared")
class SharedHelperWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> list[float]:
        recorded = await clock_reading()  # the helper runs first outside the step...
        return [recorded, read_clock()]  # ...then in it


@workflows.workflow.define(name="impure_around_calls")
class AroundCallsWorkflow:
    """The clock read right after an activity call, and right after an awaited one."""

    @workflows.workflow.entrypoint
    async def run(self) -> list[bool]:
        pending = step(1)
        called = time.time()  # IMPURE after a call
        await pending
        await step(2)
        awaited = time.time()  # IMPURE after an await
        return [called > 0, awaited > 0]


@workflows.workflow.define(name="impure_after_tasks")
class AfterTasksWorkflow:
    """The clock read right after tasks were made (the guard's hook steps out meanwhile)."""

    @workflows.workflow.entrypoint
    async def run(self) -> list[bool]:
        both = asyncio.gather(step(1), step(2))  # a task for each call
        made = time.time()  # IMPURE after making tasks
        return [made > 0, *(n > 0 for n in await both)]


class _SeenFuture(asyncio.Future):  # type: ignore[type-arg]
    """A future that notes the profile hook in force whenever asyncio asks it if it was
    cancelled (``gather``'s callback does, for each awaitable it was given)."""

    hooks: ClassVar[list[object]] = []

    def cancelled(self) -> bool:
        _SeenFuture.hooks.append(sys.getprofile())
        return super().cancelled()


@workflows.workflow.define(name="impure_gathered_future")
class GatheredFutureWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> list[object]:
        loop = asyncio.get_running_loop()
        mine = _SeenFuture(loop=loop)
        loop.call_soon(mine.set_result, 1)
        value, _ = await asyncio.gather(mine, step(2))
        return [value, time.time() > 0]  # IMPURE after a gather
