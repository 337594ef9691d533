"""Durable timers, and what the workflow sees of time."""

from __future__ import annotations

import wfrun as workflows


@workflows.workflow.define(name="nap")
class NapWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, seconds: float) -> dict:
        before = workflows.workflow.now()
        await workflows.workflow.sleep(seconds)
        after = workflows.workflow.now()
        return {"slept": (after - before).total_seconds(), "woke": after.isoformat()}


@workflows.workflow.define(name="patience")
class PatienceWorkflow:
    """wait_condition with a timeout, met by another task or not met at all."""

    def __init__(self) -> None:
        self.ready = False

    async def become_ready(self, after: float) -> None:
        await workflows.workflow.sleep(after)
        self.ready = True

    @workflows.workflow.entrypoint
    async def run(self, ready_after: float, timeout: float) -> str:
        import asyncio

        helper = asyncio.create_task(self.become_ready(ready_after))
        try:
            await workflows.workflow.wait_condition(lambda: self.ready, timeout=timeout)
        except TimeoutError:
            helper.cancel()
            return "gave up"
        return "ready"


@workflows.workflow.define(name="forever")
class ForeverWorkflow:
    """Waits on its own state, which nothing in the run can change: only a message could."""

    @workflows.workflow.entrypoint
    async def run(self) -> str:
        self.approved = False
        await workflows.workflow.wait_condition(lambda: self.approved)
        return "approved"
