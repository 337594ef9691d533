"""Workflows that take messages: signals and queries, on a waiting run and on a live one."""

from __future__ import annotations

from pathlib import Path

import wfrun as workflows

from flows.steps import log_attempt


@workflows.activity
async def ship(order: str, approver: str) -> str:
    log_attempt("ship")
    return f"{order} shipped, approved by {approver}"


@workflows.activity
async def announce(marker: str) -> None:
    """Says the run is live (the test waits for this file before it signals)."""
    Path(marker).touch()


@workflows.workflow.define(name="live_approval")
class LiveApprovalWorkflow:
    """Stays live while it waits (its timeout is within --max-wait): a signal meets a live run."""

    def __init__(self) -> None:
        self.approver = ""

    @workflows.workflow.entrypoint
    async def run(self, order: str, marker: str) -> str:
        await announce(marker)
        await workflows.workflow.wait_condition(lambda: bool(self.approver), timeout=50)
        return await ship(order, self.approver)

    @workflows.workflow.signal(name="approve")
    async def approved(self, approver: str) -> None:
        self.approver = approver
