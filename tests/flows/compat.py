"""Workflows written the way Mistral Workflows' documentation writes them."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

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


# -- execute_activities_in_parallel ------------------------------------------------------------


class Doc(BaseModel):
    doc_id: int
    text: str


@workflows.activity(retry_policy_initial_interval=0.01)
async def shout(doc: Doc) -> str:
    from flows.steps import log_attempt

    log_attempt(f"shout{doc.doc_id}")
    await asyncio.sleep(0.02 * (4 - doc.doc_id))  # the later items finish first
    return doc.text.upper()


@workflows.activity()
async def label(name: str, count: int) -> str:
    return f"{name}:{count}"


@workflows.activity()
async def next_doc(previous: Doc | None) -> Doc | None:
    index = 0 if previous is None else previous.doc_id + 1
    return Doc(doc_id=index, text=f"page {index}") if index < 3 else None


@workflows.activity()
async def doc_at(params: workflows.GetItemFromIndexParams) -> Doc:
    return Doc(doc_id=params.idx, text=f"{params.extra_params['prefix']} {params.idx}")


@workflows.activity(retry_policy_max_attempts=1)
async def rejects_the_third(doc: Doc) -> str:
    if doc.doc_id == 2:
        raise ValueError(f"no {doc.text}")
    return doc.text


async def not_an_activity(doc: Doc) -> str:
    return doc.text


@workflows.workflow.define
class FanOutWorkflow:
    """One of Mistral's three executors, chosen by ``pattern``."""

    @workflows.workflow.entrypoint
    async def run(self, pattern: str, limit: int = 100) -> list[str] | None:
        docs = [Doc(doc_id=i, text=f"doc {i}") for i in range(5)]
        parallel = workflows.workflow.execute_activities_in_parallel
        if pattern == "models":
            return await parallel(shout, items=docs, max_concurrent_scheduled_tasks=limit)
        if pattern == "dicts":
            pairs = [{"name": "a", "count": 1}, {"name": "b", "count": 2}]
            return await parallel(label, items=pairs)
        if pattern == "chain":
            return await parallel(shout, get_item_from_prev_item_activity=next_doc)
        if pattern == "offset":
            return await parallel(
                shout, get_item_from_index_activity=doc_at, n_items=3, extra_params={"prefix": "p"}
            )
        if pattern == "failing":
            try:
                return await parallel(rejects_the_third, items=docs)
            except workflows.ActivityError as error:
                return [f"{type(error).__name__}: {error.cause}"]
        return await parallel(not_an_activity, items=docs)  # type: ignore[arg-type]


# -- options of Mistral's that have no local effect ---------------------------------------------


@workflows.workflow.define(enforce_determinism=False)
class UnguardedWorkflow:
    """Reads the wall clock: fine for a workflow that opted out of the determinism checks."""

    @workflows.workflow.entrypoint
    async def run(self) -> bool:
        return time.time() > 0


@workflows.workflow.define
class DescribedHandlersWorkflow:
    """Signal, query and update handlers labelled as Mistral's console shows them."""

    def __init__(self) -> None:
        self.approved = False

    @workflows.workflow.signal(name="approve", description="Approve the request")
    async def approve(self) -> None:
        self.approved = True

    @workflows.workflow.query(name="status", description="Whether it was approved")
    def status(self) -> bool:
        return self.approved

    @workflows.workflow.update(name="reset", description="Start over")
    def reset(self) -> bool:
        self.approved = False
        return True

    @workflows.workflow.entrypoint
    async def run(self) -> bool:
        await workflows.workflow.wait_condition(lambda: self.approved)
        return self.approved
