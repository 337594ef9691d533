"""Workflows written the way Mistral Workflows' documentation writes them."""

from __future__ import annotations

import asyncio

import wfrun as workflows

with workflows.workflow.unsafe.imports_passed_through():
    import json  # noqa: F401 - how Temporal code imports inside its sandbox


@workflows.activity(retry_policy_max_attempts=None)
async def unlimited() -> None: ...


@workflows.activity(
    start_to_close_timeout=30, heartbeat_timeout=5, retry_policy_initial_interval=0.5
)
async def in_seconds() -> None: ...


@workflows.activity(retry_policy_max_attempts=1)
async def refuses() -> None:
    raise ValueError("no")


@workflows.workflow.define
class MistralStyleWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        await workflows.workflow.sleep(0, summary="a labelled timer")
        await workflows.workflow.wait_condition(lambda: True, summary="a labelled wait")
        try:
            await refuses()
        except workflows.ActivityError as error:
            cause = getattr(error.cause, "type", "")
        return {
            "execution_id": workflows.workflow.get_execution_id(),
            "cause": cause,
            "replaying": workflows.workflow.unsafe.is_replaying(),
        }


class TemporalStyleError(Exception):
    """Stands in for temporalio's ApplicationError: an exception flagged non_retryable."""

    def __init__(self, message: str, non_retryable: bool = False) -> None:
        super().__init__(message)
        self.non_retryable = non_retryable


@workflows.activity(retry_policy_max_attempts=5, retry_policy_initial_interval=0.01)
async def flagged() -> None:
    from flows.steps import log_attempt

    log_attempt("flagged")
    raise TemporalStyleError("do not retry", non_retryable=True)


@workflows.workflow.define
class FlaggedWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            await flagged()
        except workflows.ActivityError as error:
            return error.retry_state
        return "no error"


# -- schedule_to_close_timeout: the whole call's time, every attempt and delay included --------


@workflows.activity(
    retry_policy_max_attempts=6,
    retry_policy_initial_interval=10,
    retry_policy_backoff_coefficient=1.0,
    schedule_to_close_timeout=25,
)
async def keeps_failing() -> None:
    from flows.steps import log_attempt

    log_attempt("keeps_failing")
    raise ValueError("still down")


@workflows.activity(
    start_to_close_timeout=5,
    retry_policy_max_attempts=2,
    retry_policy_initial_interval=0.01,
    schedule_to_close_timeout=0.2,
)
async def hangs() -> None:
    from flows.steps import log_attempt

    log_attempt("hangs")
    await asyncio.sleep(3600)


@workflows.activity(retry_policy_initial_interval=0.01, schedule_to_close_timeout=100)
async def fails_once() -> str:
    from flows.steps import log_attempt

    if log_attempt("fails_once") == 1:
        raise ConnectionError("first attempt fails")
    return "done"


@workflows.workflow.define
class OutOfTimeWorkflow:
    """Calls the activity named ``which`` and reports how the call ended."""

    @workflows.workflow.entrypoint
    async def run(self, which: str) -> dict:
        call = {"keeps_failing": keeps_failing, "hangs": hangs, "fails_once": fails_once}[which]
        try:
            return {"result": await call()}
        except workflows.ActivityError as error:
            return {"cause": getattr(error.cause, "type", ""), "retry_state": error.retry_state}
