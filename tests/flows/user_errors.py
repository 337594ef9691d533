"""Workflows whose errors must point at the user's own code."""

from __future__ import annotations

import random

import wfrun as workflows

from flows.steps import step


class PaymentDeclined(Exception):
    """An exception type of the user's own."""


@workflows.activity(retry_policy_max_attempts=1)
async def charge(amount: int) -> str:
    raise PaymentDeclined(f"card declined for {amount}")  # RAISED HERE


@workflows.workflow.define(name="pay")
class PayWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, amount: int) -> str:
        return await charge(amount)


@workflows.workflow.define(name="pay_caught")
class CaughtPayWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, amount: int) -> dict:
        try:
            await charge(amount)
        except workflows.ActivityError as error:
            cause = error.cause
            return {
                "class": type(cause).__name__,
                "repr": repr(cause),
                "application_error": isinstance(cause, workflows.ApplicationError),
                "notes": getattr(cause, "__notes__", []),
            }
        return {}


@workflows.workflow.define(name="dice")
class DiceWorkflow:
    """Not deterministic: what it asks for depends on random.random()."""

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        first = await step(1)
        roll = int(random.random() * 1_000_000) + 2  # IMPURE CALL
        return first + await step(roll)


#: What `EditedWorkflow` ships; a test edits it, as a developer edits the code between runs.
DESTINATION = {"order": 1}


@workflows.workflow.define(name="edited")
class EditedWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        first = await step(1)
        return first + await step(DESTINATION["order"] + 1)
