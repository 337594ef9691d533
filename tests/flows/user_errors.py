"""Workflows whose errors must point at the user's own code."""

from __future__ import annotations

import wfrun as workflows


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
