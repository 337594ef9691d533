"""Workflows whose live order depends on timing, for exact-replay tests.

Each activity sleeps the delay that ``$WFRUN_TEST_DELAYS`` (JSON: name → seconds) gives it, or
its default: a test reverses the timings between the live run and the resume, so anything
executed again instead of replayed would come back in another order.
"""

from __future__ import annotations

import asyncio
import json
import os

import wfrun as workflows

from flows.steps import reached

DEFAULT_DELAYS = {
    "slow": 0.6,
    "mid": 0.4,
    "fast": 0.2,
    "g1": 0.1,
    "g2": 0.02,
    "later": 3.0,
    "deadline": 0.3,
}


def delay_of(name: str) -> float:
    delays = {**DEFAULT_DELAYS, **json.loads(os.environ.get("WFRUN_TEST_DELAYS", "{}"))}
    return delays[name]


@workflows.activity
async def sleepy(name: str) -> str:
    await reached(name)
    await asyncio.sleep(delay_of(name))
    return name


@workflows.activity
async def note(values: dict) -> None:
    """Records what the workflow computed: its input is kept in the history."""


@workflows.workflow.define(name="race")
class RaceWorkflow:
    """as_completed over three activities, then gather, then a long step (killed there)."""

    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        order = []
        for next_done in asyncio.as_completed([sleepy("slow"), sleepy("fast"), sleepy("mid")]):
            order.append(await next_done)
        gathered = await asyncio.gather(sleepy("g1"), sleepy("g2"))
        stamp = {
            "now": workflows.workflow.now().isoformat(),
            "random": workflows.workflow.random().random(),
            "uuid": str(workflows.workflow.uuid4()),
        }
        await note(stamp)
        await sleepy("later")
        return {"order": order, "gathered": gathered, "stamp": stamp}


@workflows.workflow.define(name="first_completed")
class FirstCompletedWorkflow:
    """asyncio.wait(FIRST_COMPLETED) between two activities; the loser is cancelled."""

    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        tasks = [asyncio.create_task(sleepy("slow")), asyncio.create_task(sleepy("fast"))]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        winner = done.pop().result()
        for task in pending:
            task.cancel()
        await sleepy("later")
        return {"winner": winner, "losers": len(pending)}


@workflows.workflow.define(name="timer_race")
class TimerRaceWorkflow:
    """A durable timer (wait_for's deadline) racing an activity."""

    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        try:
            result = await asyncio.wait_for(sleepy("slow"), timeout=delay_of("deadline"))
        except TimeoutError:
            result = "timed out"
        await sleepy("later")
        return {"result": result}


@workflows.workflow.define(name="helpers")
class HelpersWorkflow:
    """The deterministic helpers over coroutines of the workflow's own async functions."""

    async def fetch(self, name: str) -> str:
        return (await sleepy(name)).upper()

    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        order = [
            await c
            for c in workflows.workflow.as_completed(
                [self.fetch("slow"), self.fetch("fast"), self.fetch("mid")]
            )
        ]
        done, pending = await workflows.workflow.wait(
            [self.fetch("g1"), self.fetch("g2")], return_when=asyncio.FIRST_COMPLETED
        )
        first = [f.result() for f in done]
        rest = [await f for f in pending]
        await sleepy("later")
        return {"order": order, "first": first, "rest": rest}
