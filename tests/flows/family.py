"""Workflows that start other runs: children, and loops that continue as new."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

import wfrun as workflows

from flows.steps import log_attempt


@workflows.activity
async def pack(item: str) -> str:
    log_attempt("pack")
    return f"{item} packed"


@workflows.activity
async def touch(marker: str) -> None:
    """Says the run got here (a crash test waits for the file before it kills)."""
    log_attempt("touch")
    Path(marker).touch()


@workflows.activity
async def hold(marker: str) -> None:
    """The first time, touches the marker and runs until cancelled or killed; then returns.

    The attempt is logged (what a test waits for before it kills) only once the marker is
    there: a kill right after the log line must find the marker on resume."""
    if Path(marker).exists():
        log_attempt("hold")
        return
    Path(marker).touch()
    log_attempt("hold")
    await asyncio.sleep(60)


@workflows.activity
async def undo(item: str) -> None:
    log_attempt("undo")


@workflows.workflow.define(name="pack_item")
class PackItem:
    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        return await pack(item)


class Parcel(BaseModel):
    item: str
    fragile: bool = False


@workflows.workflow.define(name="pack_parcel")
class PackParcel:
    """A child whose input is a pydantic model (its fields are its arguments)."""

    @workflows.workflow.entrypoint
    async def run(self, parcel: Parcel) -> str:
        packed = await pack(parcel.item)
        return f"{packed} (fragile)" if parcel.fragile else packed


@workflows.workflow.define(name="fan_out")
class FanOut:
    """A parent that starts one child per item, side by side, and gathers their results."""

    @workflows.workflow.entrypoint
    async def run(self, items: list[str]) -> list[str]:
        return list(
            await asyncio.gather(
                *(workflows.workflow.execute_workflow(PackItem, {"item": i}) for i in items)
            )
        )


@workflows.workflow.define(name="top_level_call")
class TopLevelCall:
    """Calls the top-level ``workflows.execute_workflow`` from workflow code: a child too."""

    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        return await workflows.execute_workflow(PackParcel, Parcel(item=item, fragile=True))


@workflows.workflow.define(name="failing_child")
class FailingChild:
    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        await pack(item)
        raise workflows.ApplicationError(f"{item} does not fit", non_retryable=True)


@workflows.workflow.define(name="careful_parent")
class CarefulParent:
    """Catches its child's failure and says what it was."""

    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        try:
            return await workflows.workflow.execute_workflow(FailingChild, {"item": item})
        except workflows.WorkflowFailedError as exc:
            return f"child failed: {exc.__cause__}"


@workflows.workflow.define(name="failing_parent")
class FailingParent:
    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        return await workflows.workflow.execute_workflow(FailingChild, {"item": item})


@workflows.workflow.define(name="fan_out")
class FanOutOther:
    """`FanOut` as edited later: it passes its children another input."""

    @workflows.workflow.entrypoint
    async def run(self, items: list[str]) -> list[str]:
        return [
            await workflows.workflow.execute_workflow(PackItem, {"item": item.upper()})
            for item in items
        ]


@workflows.workflow.define(name="bad_child_id")
class BadChildId:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            await workflows.workflow.execute_workflow(PackItem, {"item": "x"}, execution_id="../x")
        except workflows.InputError as exc:
            return str(exc)
        return "started"


@workflows.workflow.define(name="named_child")
class NamedChild:
    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        return await workflows.workflow.execute_workflow(
            PackItem, {"item": item}, execution_id=f"pack-{item}"
        )


@workflows.workflow.define(name="slow_child")
class SlowChild:
    """Holds until it is killed or cancelled; cleans up when cancelled."""

    @workflows.workflow.entrypoint
    async def run(self, marker: str) -> str:
        try:
            await hold(marker)
        except asyncio.CancelledError:
            await undo("slow")
            raise
        return await pack("slow")


@workflows.workflow.define(name="slow_parent")
class SlowParent:
    @workflows.workflow.entrypoint
    async def run(self, marker: str) -> str:
        first = await workflows.workflow.execute_workflow(PackItem, {"item": "first"})
        second = await workflows.workflow.execute_workflow(SlowChild, {"marker": marker})
        return f"{first}, {second}"


@workflows.workflow.define(name="approve_child")
class ApproveChild:
    """A child that waits for a signal."""

    def __init__(self) -> None:
        self.approver = ""

    @workflows.workflow.signal(name="approve")
    def approve(self, approver: str) -> None:
        self.approver = approver

    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        await workflows.workflow.wait_condition(lambda: bool(self.approver))
        return f"{item} approved by {self.approver}"


@workflows.workflow.define(name="approve_parent")
class ApproveParent:
    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        approved = await workflows.workflow.execute_workflow(
            ApproveChild, {"item": item}, execution_id=f"approve-{item}"
        )
        return f"parent saw: {approved}"


@workflows.workflow.define(name="counter")
class Counter:
    """Counts to ``until``, one activity a step, continuing as new every ``per_run`` steps."""

    @workflows.workflow.entrypoint
    async def run(self, start: int, until: int, per_run: int) -> int:
        count = start
        for _ in range(per_run):
            if count >= until:
                return count
            await pack(str(count))
            count += 1
        workflows.workflow.continue_as_new({"start": count, "until": until, "per_run": per_run})


@workflows.workflow.define(name="poller")
class Poller:
    """Continues as new when wfrun says the history is long enough."""

    @workflows.workflow.entrypoint
    async def run(self, polled: int, until: int) -> int:
        while polled < until:
            await pack(str(polled))
            polled += 1
            if workflows.workflow.should_continue_as_new():
                workflows.workflow.continue_as_new({"polled": polled, "until": until})
        return polled


@workflows.workflow.define(name="family")
class FamilyWorkflow:
    """Every child event in one history: a child that completes, one that fails, and one the
    workflow stops waiting for (asked to cancel); then it continues as new once."""

    @workflows.workflow.entrypoint
    async def run(self, key: str = "k1", generation: int = 1) -> str:
        packed = await workflows.workflow.execute_workflow(PackItem, {"item": key})
        try:
            await workflows.workflow.execute_workflow(FailingChild, {"item": key})
        except workflows.WorkflowFailedError as exc:
            failed = str(exc.__cause__)
        waiting = asyncio.ensure_future(
            workflows.workflow.execute_workflow(ApproveChild, {"item": f"{key}-{generation}"})
        )
        await pack("meanwhile")
        waiting.cancel()
        if generation == 1:
            workflows.workflow.continue_as_new({"key": key, "generation": 2})
        return f"{packed}; {failed}"


# -- review: children in corners ----------------------------------------------------------------


@workflows.activity
async def until_blocked(run_id: str) -> None:
    """Returns once run ``run_id`` is BLOCKED and let go (nobody holds its history)."""
    from wfrun.local.store import RunStore

    log_attempt("until_blocked")
    store = RunStore()
    path = store.path(run_id)
    while not (
        path.exists() and b'"RunBlocked"' in path.read_bytes() and not store.is_locked(run_id)
    ):
        await asyncio.sleep(0.01)


@workflows.activity
async def gate(release: str) -> None:
    """Logs that it got here, then returns once the file ``release`` exists."""
    log_attempt("gate")
    while not Path(release).exists():
        await asyncio.sleep(0.01)


@workflows.workflow.define(name="buggy_child")
class BuggyChild:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        return {"a": 1}["b"]  # a bug: the run is BLOCKED


@workflows.workflow.define(name="leaves_blocked_child")
class LeavesBlockedChild:
    """Starts a child that blocks, does not wait for it, and ends."""

    @workflows.workflow.entrypoint
    async def run(self) -> str:
        buggy = f"{workflows.workflow.info().run_id}-buggy"
        child = asyncio.ensure_future(
            workflows.workflow.execute_workflow(BuggyChild, execution_id=buggy)
        )
        await until_blocked(buggy)
        child.cancel()
        return "done"


@workflows.workflow.define(name="chained_approver")
class ChainedApprover:
    """Continues as new once, then waits for a signal."""

    def __init__(self) -> None:
        self.approver = ""

    @workflows.workflow.signal(name="approve")
    def approve(self, approver: str) -> None:
        self.approver = approver

    @workflows.workflow.entrypoint
    async def run(self, generation: int) -> str:
        if generation == 1:
            workflows.workflow.continue_as_new({"generation": 2})
        await workflows.workflow.wait_condition(lambda: bool(self.approver))
        return f"approved by {self.approver}"


@workflows.workflow.define(name="chained_parent")
class ChainedParent:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        return await workflows.workflow.execute_workflow(
            ChainedApprover, {"generation": 1}, execution_id="chained"
        )


@workflows.workflow.define(name="shared_child_id")
class SharedChildId:
    """Starts its child under a fixed execution id, whatever run it is."""

    @workflows.workflow.entrypoint
    async def run(self, item: str) -> str:
        return await workflows.workflow.execute_workflow(
            PackItem, {"item": item}, execution_id="shared"
        )


class Answer(BaseModel):
    ok: bool


@workflows.workflow.define(name="asking_child")
class AskingChild(workflows.InteractiveWorkflow):
    @workflows.workflow.entrypoint
    async def run(self) -> bool:
        return (await self.wait_for_input(Answer, label="answer")).ok


@workflows.workflow.define(name="gated_parent")
class GatedParent:
    """Starts a child that waits for input, then waits at a gate before awaiting it."""

    @workflows.workflow.entrypoint
    async def run(self, release: str) -> str:
        child = asyncio.ensure_future(
            workflows.workflow.execute_workflow(AskingChild, execution_id="asker")
        )
        await gate(release)
        return f"child said {await child}"
