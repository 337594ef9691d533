"""Workflows whose saved histories (tests/histories/*.jsonl) must keep replaying."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import wfrun as workflows

FAST = timedelta(milliseconds=5)


@workflows.activity(retry_policy_initial_interval=FAST)
async def lookup(key: str) -> dict:
    if workflows.activity_info().attempt == 1:
        raise ConnectionError("cold cache")
    return {"key": key, "name": f"item {key}"}


@workflows.activity
async def shout(text: str) -> str:
    return text.upper()


@workflows.activity(retry_policy_max_attempts=1)
async def refuse(reason: str) -> None:
    raise workflows.ApplicationError(reason, non_retryable=True)


@workflows.workflow.define(name="golden")
class GoldenWorkflow:
    """One of each: a retried activity, a timer, a patch, a gather, a caught failure."""

    @workflows.workflow.entrypoint
    async def run(self, key: str) -> dict:
        item = await lookup(key)
        await workflows.workflow.sleep(30)
        shouted: list[str] = []
        if workflows.workflow.patched("shout"):
            shouted = list(await asyncio.gather(shout(item["name"]), shout("again")))
        try:
            await refuse("not today")
        except workflows.ActivityError as exc:
            refused = getattr(exc.__cause__, "message", "")
        return {
            "item": item,
            "shouted": shouted,
            "refused": refused,
            "at": workflows.workflow.now().isoformat(),
        }


@workflows.workflow.define(name="overnight")
class OvernightWorkflow:
    """A timer longer than a command waits for: the run stops WAITING, and goes on later."""

    @workflows.workflow.entrypoint
    async def run(self, key: str) -> str:
        await workflows.workflow.sleep(timedelta(hours=8))
        return await shout(key)


@workflows.workflow.define(name="approval")
class ApprovalWorkflow:
    """Waits for a person's signal, answers a query meanwhile, then acts."""

    def __init__(self) -> None:
        self.approver: str | None = None

    @workflows.workflow.entrypoint
    async def run(self, order: str) -> str:
        await workflows.workflow.wait_condition(lambda: self.approver is not None)
        return await shout(f"{order} approved by {self.approver}")

    @workflows.workflow.signal
    def approve(self, approver: str) -> None:
        self.approver = approver

    @workflows.workflow.query
    def status(self) -> str:
        return f"approved by {self.approver}" if self.approver else "waiting for approval"


@workflows.workflow.define(name="typo")
class TypoWorkflow:
    """A bug after a step: the run is BLOCKED, and carries on once the code is fixed."""

    @workflows.workflow.entrypoint
    async def run(self, key: str) -> str:
        shouted = await shout(key)
        if not FIXED:
            return {"shouted": shouted}["shoutd"]  # the typo: a KeyError
        return shouted


#: Tests flip this to "fix" TypoWorkflow.
FIXED = False
