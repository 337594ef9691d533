"""The workflows the stand-in worker (tests/temporal_standin.py) serves, written for wfrun.

``wfrun start`` loads them for their names and input types; ``--target`` checks messages
against their handlers. Their bodies are what wfrun's own worker would run.
"""

from __future__ import annotations

from datetime import timedelta

import wfrun as workflows


@workflows.activity
async def hello(name: str) -> str:
    return f"hello, {name}"


@workflows.workflow.define(name="greet")
class Greet:
    @workflows.workflow.entrypoint
    async def run(self, name: str) -> str:
        return await hello(name)


@workflows.workflow.define(name="approval")
class Approval:
    def __init__(self) -> None:
        self.approver: str | None = None
        self.limit = 100

    @workflows.workflow.entrypoint
    async def run(self, amount: int) -> str:
        await workflows.workflow.wait_condition(lambda: self.approver is not None)
        return f"paid {amount} EUR, approved by {self.approver}"

    @workflows.workflow.signal
    def approve(self, approver: str) -> None:
        self.approver = approver

    @workflows.workflow.query
    def status(self) -> str:
        return f"approved by {self.approver}" if self.approver else "waiting"

    @workflows.workflow.update
    def raise_limit(self, limit: int) -> int:
        if limit > 1000:
            raise workflows.ApplicationError("over the approver's authority", type="TooHigh")
        self.limit = limit
        return limit

    @raise_limit.validator
    def check(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("a limit is never negative")


@workflows.workflow.define(name="broken")
class Broken:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        return {}["missing"]  # type: ignore[no-any-return]


@workflows.workflow.define(name="refused")
class Refused:
    @workflows.workflow.entrypoint
    async def run(self, reason: str) -> str:
        raise workflows.ApplicationError(reason, type="PaymentDeclined", non_retryable=True)


@workflows.workflow.define(name="slow")
class Slow:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        await workflows.workflow.sleep(3600)
        return "woke up"


@workflows.workflow.define(name="slow_deadline", execution_timeout=timedelta(seconds=1))
class SlowWithDeadline(Slow):
    """`slow` under a one-second limit on the whole run, which `start` gives the cluster."""
