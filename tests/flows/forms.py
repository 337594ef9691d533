"""Workflows that ask a person for input: with a time limit, or a long wait after it."""

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


class Name(BaseModel):
    name: str


@workflows.workflow.define(name="timed_form")
class TimedForm(workflows.InteractiveWorkflow):
    """Waits for a name for less than --max-wait: a durable timer this process waits for."""

    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            answer = await self.wait_for_input(Name, label="who", timeout=timedelta(seconds=50))
        except TimeoutError:
            return "nobody answered"
        return f"hello {answer.name}"


@workflows.workflow.define(name="form_then_sleep")
class FormThenSleep(workflows.InteractiveWorkflow):
    """Waits for a name, then for an hour (far past --max-wait)."""

    @workflows.workflow.entrypoint
    async def run(self) -> str:
        answer = await self.wait_for_input(Name, label="who")
        await workflows.workflow.sleep(timedelta(hours=1))
        return f"hello {answer.name}"
