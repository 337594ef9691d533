"""Workflows that ask a person for input."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

import wfrun as workflows


class Confirmation(BaseModel):
    ok: bool


@workflows.workflow.define(name="confirm_or_give_up")
class ConfirmOrGiveUp(workflows.InteractiveWorkflow):
    """Waits an hour for a confirmation, then gives up."""

    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            answer = await self.wait_for_input(Confirmation, timeout=timedelta(hours=1))
        except TimeoutError:
            return "nobody answered"
        return "confirmed" if answer.ok else "declined"
