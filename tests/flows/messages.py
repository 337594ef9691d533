"""Workflows that take messages: signals and queries, on a waiting run and on a live one."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

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


@workflows.activity
async def reserve(order: str) -> None:
    log_attempt("reserve")


@workflows.activity
async def release(order: str) -> None:
    log_attempt("release")


@workflows.activity(start_to_close_timeout=timedelta(seconds=60))
async def pack(order: str, marker: str) -> str:
    """A long step: the test cancels the run while it runs."""
    log_attempt("pack")
    Path(marker).touch()
    await asyncio.sleep(50)
    return "packed"


@workflows.workflow.define(name="saga")
class SagaWorkflow:
    """Reserves, then waits for payment; cancelled, it releases what it reserved."""

    def __init__(self) -> None:
        self.paid = False

    @workflows.workflow.entrypoint
    async def run(self, order: str, marker: str = "") -> str:
        await reserve(order)
        try:
            if marker:
                await pack(order, marker)
            await workflows.workflow.wait_condition(lambda: self.paid)
        except asyncio.CancelledError:
            await release(order)  # compensation: activities still run after a cancel
            raise
        return "paid"

    @workflows.workflow.signal
    def pay(self) -> None:
        self.paid = True


@workflows.activity(start_to_close_timeout=timedelta(seconds=30))
def careful(marker: str) -> str:
    """A plain def activity: it cannot be interrupted, so it checks whether it was given up."""
    for _ in range(1500):
        if workflows.activity_info().is_cancelled():
            Path(marker).touch()
            return "stopped early"
        time.sleep(0.02)
    return "ran to the end"


@workflows.workflow.define(name="impatient")
class ImpatientWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, marker: str) -> str:
        try:
            return await asyncio.wait_for(careful(marker), timeout=0.3)
        except TimeoutError:
            return "gave up"


@workflows.workflow.define(name="cart")
class CartWorkflow:
    """Waits for checkout; updates change the quantity and answer with it."""

    def __init__(self) -> None:
        self.quantity = 1
        self.done = False

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await workflows.workflow.wait_condition(lambda: self.done)
        return self.quantity

    @workflows.workflow.update
    def set_quantity(self, quantity: int) -> int:
        self.quantity = quantity
        return self.quantity

    @set_quantity.validator
    def _positive(self, quantity: int) -> None:
        if quantity < 1:
            raise ValueError("quantity must be 1 or more")

    @workflows.workflow.signal
    def checkout(self) -> None:
        self.done = True


@dataclass
class Approval:
    approver: str
    note: str = ""


class Quantity(BaseModel):
    quantity: int


@workflows.workflow.define(name="structured_messages")
class StructuredMessages:
    """Handlers that take one dataclass or pydantic model: a message gives its fields."""

    def __init__(self) -> None:
        self.approval: Approval | None = None
        self.quantity = 0

    @workflows.workflow.entrypoint
    async def run(self) -> str:
        await workflows.workflow.wait_condition(lambda: self.approval is not None)
        assert self.approval is not None
        return f"{self.approval.approver} ({self.approval.note}) x{self.quantity}"

    @workflows.workflow.signal
    def approve(self, approval: Approval) -> None:
        self.approval = approval

    @workflows.workflow.update
    def set_quantity(self, change: Quantity) -> int:
        self.quantity = change.quantity
        return self.quantity
