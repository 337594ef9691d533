"""Test workflows for the Temporal backend: each reports what its code saw, for the tests to
compare with what a local run sees. Activities log attempts like `flows.steps` does."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

from pydantic import BaseModel

import wfrun as workflows

from flows.steps import FAST_RETRY, log_attempt, reached

# Short timeouts: a killed worker's attempt is retried only once its start-to-close ran out.
SHORT = timedelta(seconds=3)


@workflows.activity(start_to_close_timeout=SHORT, retry_policy_initial_interval=FAST_RETRY)
async def slow_step(n: int) -> int:
    await reached(f"slow{n}")
    return n * 10


@workflows.workflow.define(name="t_steps")
class StepsOnCluster:
    """``count`` sequential steps; ``slow{n}`` marks each (and holds it, under WFRUN_TEST_HOLD)."""

    @workflows.workflow.entrypoint
    async def run(self, count: int) -> list[int]:
        return [await slow_step(i) for i in range(1, count + 1)]


@workflows.activity(retry_policy_max_attempts=4, retry_policy_initial_interval=FAST_RETRY)
async def flaky_call(fail_times: int) -> str:
    attempt = log_attempt("flaky_call")
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt} failed")
    return f"ok after {attempt}"


@workflows.activity(retry_policy_max_attempts=5, retry_policy_initial_interval=FAST_RETRY)
async def declines() -> None:
    log_attempt("declines")
    raise workflows.ApplicationError("card declined", non_retryable=True)


class LookupFailed(KeyError):
    """A subclass: listing its base class in the policy stops it too."""


@workflows.activity(
    retry_policy_max_attempts=5,
    retry_policy_initial_interval=FAST_RETRY,
    retry_policy_non_retryable_errors=["KeyError"],
)
async def looks_up() -> None:
    log_attempt("looks_up")
    raise LookupFailed("missing")


@workflows.activity(max_payload=100, retry_policy_initial_interval=FAST_RETRY)
async def too_big() -> str:
    log_attempt("too_big")
    return "x" * 1000


@workflows.workflow.define(name="t_failures")
class FailuresOnCluster:
    """Calls the activity ``which`` names and reports the `ActivityError` it got."""

    @workflows.workflow.entrypoint
    async def run(self, which: str, fail_times: int = 0) -> dict:
        calls = {"flaky": lambda: flaky_call(fail_times), "flag": declines, "listed": looks_up}
        try:
            if which == "too_big":
                await too_big()
            else:
                return {"result": await calls[which]()}
        except workflows.PayloadTooLargeError as exc:
            return {"too_large": exc.side, "activity": exc.activity, "limit": exc.limit}
        except workflows.ActivityError as exc:
            cause = exc.__cause__
            return {
                "error": type(exc).__name__,
                "attempts": exc.attempts,
                "retry_state": exc.retry_state,
                "cause_class": type(cause).__name__,
                "cause_type": getattr(cause, "type", None),
                "cause_message": str(cause),
                "message": str(exc),
            }
        return {}


@workflows.workflow.define(name="t_fails")
class FailsOnCluster:
    """Lets an activity's failure end the run, or raises one of its own."""

    @workflows.workflow.entrypoint
    async def run(self, how: str) -> None:
        if how == "activity":
            await declines()
        elif how == "application":
            raise workflows.ApplicationError("refused on purpose")
        else:  # a bug: the run stays open until the code is fixed
            raise KeyError("a bug")


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
async def tell_info(fail_first: bool) -> dict:
    info = workflows.activity_info()
    log_attempt("tell_info", info.idempotency_key)
    if fail_first and info.attempt == 1:
        raise ConnectionError("first attempt fails")
    return {
        "run_id": info.run_id,
        "activity_id": info.activity_id,
        "name": info.name,
        "attempt": info.attempt,
        "key": info.idempotency_key,
        "workflow_name": info.workflow_name,
    }


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
def in_a_thread() -> str:
    return threading.current_thread().name


@workflows.workflow.define(name="t_runtime")
class RuntimeOnCluster:
    """What the runtime seam gives workflow code."""

    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        before = workflows.workflow.now()
        await workflows.workflow.sleep(0.2)
        after = workflows.workflow.now()
        try:
            await workflows.workflow.wait_condition(lambda: False, timeout=0.1)
            timed_out = ""
        except TimeoutError as exc:
            timed_out = str(exc)
        info = workflows.workflow.info()
        return {
            "run_id": info.run_id,
            "workflow_name": info.workflow_name,
            "execution_id": workflows.workflow.get_execution_id(),
            "slept": (after - before).total_seconds(),
            "aware": before.tzinfo is not None,
            "random": workflows.workflow.random().random(),
            "uuid_version": workflows.workflow.uuid4().version,
            "patched": workflows.workflow.patched("new-branch"),
            "timed_out": timed_out,
            "activity": await tell_info(False),
            "thread": await in_a_thread(),
        }


@workflows.workflow.define(name="t_info")
class InfoOnCluster:
    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        return await tell_info(True)


@workflows.activity(
    heartbeat_timeout=timedelta(seconds=5),
    retry_policy_initial_interval=FAST_RETRY,
)
def counts_with_heartbeats(upto: int) -> dict:
    info = workflows.activity_info()
    start = info.heartbeat_details[0] if info.heartbeat_details else 0
    log_attempt("counts", f"{info.attempt} from {start}")
    for i in range(start, upto):
        workflows.activity_heartbeat(i + 1)
        if info.attempt == 1 and i + 1 == upto // 2:
            time.sleep(0.1)  # let the heartbeat reach the worker's sender
            raise ConnectionError("half way")
    return {"attempt": info.attempt, "started_at": start}


@workflows.workflow.define(name="t_heartbeats")
class HeartbeatsOnCluster:
    @workflows.workflow.entrypoint
    async def run(self, upto: int) -> dict:
        return await counts_with_heartbeats(upto)


class Approval(BaseModel):
    approver: str
    approved: bool = True


@workflows.workflow.define(name="t_messages")
class MessagesOnCluster(workflows.InteractiveWorkflow):
    """Signals, queries, an update with a validator, and an input."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.limit = 3
        self.done = False

    @workflows.workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)

    @workflows.workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflows.workflow.query
    def status(self) -> dict:
        return {"items": self.items, "limit": self.limit}

    @workflows.workflow.update
    def set_limit(self, limit: int) -> int:
        old, self.limit = self.limit, limit
        return old

    @set_limit.validator
    def _positive(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, not {limit}")

    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        await workflows.workflow.wait_condition(lambda: self.done)
        answer = await self.wait_for_input(Approval, label="approval")
        return {"items": self.items, "limit": self.limit, "approver": answer.approver}


@workflows.workflow.define(name="t_child")
class ChildOnCluster:
    @workflows.workflow.entrypoint
    async def run(self, n: int) -> dict:
        if n < 0:
            raise workflows.ApplicationError(f"negative: {n}")
        return {"doubled": n * 2, "child_id": workflows.workflow.info().run_id}


@workflows.workflow.define(name="t_parent")
class ParentOnCluster:
    @workflows.workflow.entrypoint
    async def run(self, n: int) -> dict:
        try:
            return await workflows.workflow.execute_workflow(ChildOnCluster, {"n": n})
        except workflows.WorkflowFailedError as exc:
            return {"failed": str(exc), "cause": str(exc.__cause__)}


@workflows.workflow.define(name="t_loop")
class LoopOnCluster:
    @workflows.workflow.entrypoint
    async def run(self, left: int, total: int = 0) -> dict:
        if left > 0:
            workflows.workflow.continue_as_new({"left": left - 1, "total": total + left})
        return {"total": total, "suggested": workflows.workflow.should_continue_as_new()}


@workflows.activity(
    heartbeat_timeout=timedelta(seconds=2), retry_policy_initial_interval=FAST_RETRY
)
def waits_for_cancel() -> str:
    log_attempt("waits_for_cancel")
    for _ in range(600):
        workflows.activity_heartbeat()
        if workflows.activity_info().is_cancelled():
            log_attempt("saw_cancel")
            return "cancelled"
        time.sleep(0.05)
    return "never cancelled"


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
async def note(name: str) -> None:
    log_attempt(name)


@workflows.workflow.define(name="t_cancel")
class CancelOnCluster:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            return await waits_for_cancel()
        except asyncio.CancelledError:
            await note("workflow_saw_cancel")  # cleanup still runs activities, as locally
            raise


@workflows.workflow.define(name="t_reads_file")
class ReadsFileOnCluster:
    """Workflow code doing I/O: Temporal's sandbox refuses it, ``--no-sandbox`` lets it be."""

    @workflows.workflow.entrypoint
    async def run(self, path: str) -> str:
        with open(path) as f:
            return f.read()


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
async def double(n: int) -> int:
    return n * 2


@workflows.workflow.define(name="t_parallel")
class ParallelOnCluster:
    @workflows.workflow.entrypoint
    async def run(self, items: list[int]) -> dict:
        fanned = await workflows.execute_activities_in_parallel(double, items=items)
        gathered = await asyncio.gather(*(double(n) for n in items))
        return {"fanned": fanned, "gathered": list(gathered)}


@workflows.workflow.define(name="t_big_input")
class BigInputOnCluster:
    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        try:
            await double("x" * 3_000_000)  # type: ignore[arg-type]
        except workflows.PayloadTooLargeError as exc:
            return {"side": exc.side, "activity": exc.activity}
        return {}


@workflows.workflow.define(name="t_slow_child", execution_timeout=timedelta(seconds=1))
class SlowChildOnCluster:
    @workflows.workflow.entrypoint
    async def run(self) -> None:
        await workflows.workflow.sleep(60)


@workflows.workflow.define(name="t_parent_of_slow")
class ParentOfSlowOnCluster:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            await workflows.workflow.execute_workflow(SlowChildOnCluster)
        except workflows.WorkflowFailedError as exc:
            return str(exc)
        return "the child finished"
