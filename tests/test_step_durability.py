"""Nothing leaves the process before what it depends on is durable: the next activity of a
lone run starts, and a child is asked to cancel, only once the outcome that led there is; an
update's answer is durable by the time its sender reads it.

What is durable is modelled as each run file's events at its last fsync or fdatasync that
returned: a power cut keeps exactly that. Whatever an activity does, or a cancel sets off,
must find everything the workflow decided it from in there. (Any change that lets a step's
sync run aside while the workflow goes on must keep these.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pydantic
import pytest

import wfrun as workflows
from wfrun.local.store import RunStore

from conftest import watch_durability


class _Durable:
    """The durable part of each run file, as the syncs so far made it."""

    def __init__(self) -> None:
        self._events: dict[tuple[int, int], bytes] = {}

    def synced(self, fd: int, info: os.stat_result, events: bytes) -> None:
        self._events[(info.st_dev, info.st_ino)] = events

    def of(self, run_id: str) -> bytes:
        """The durable events of run ``run_id`` (of the home the tests point at)."""
        info = os.stat(RunStore().path(run_id))
        return self._events.get((info.st_dev, info.st_ino), b"")


DURABLE = _Durable()
#: What was durable when each activity of the test flow started.
DURABLE_AT_START: list[bytes] = []


@pytest.fixture(autouse=True)
def durable_syncs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sync records what it made durable."""
    watch_durability(monkeypatch, DURABLE.synced)
    DURABLE._events.clear()
    DURABLE_AT_START.clear()


@workflows.activity
async def noted(n: int) -> int:
    DURABLE_AT_START.append(DURABLE.of(workflows.activity_info().run_id))
    return n


@workflows.workflow.define(name="test_step_durability_flow")
class ThreeSteps:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        total = 0
        for n in (1, 2, 3):
            total += await noted(n)
        return total


def completion(seq: int) -> bytes:
    return b'"type":"ActivityCompleted","seq":%d,' % seq


def test_the_next_activity_starts_only_once_the_previous_completion_is_durable(
    home: Path,
) -> None:
    run = workflows.execute_workflow(ThreeSteps, execution_id="t", home=home)
    assert asyncio.run(run) == 6
    first, second, third = DURABLE_AT_START
    assert completion(1) not in first
    assert completion(1) in second
    assert completion(2) in third


def test_a_child_is_asked_to_cancel_only_once_what_decided_it_is_durable(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel goes out to the child's inbox at once, in the middle of the parent's turn
    (its child BLOCKED, the parent is alone in the process): the outcome that led the parent
    there must be durable by then."""
    from wfrun.local.backend import LocalBackend

    from flows.family import LeavesBlockedChild

    asked: list[bytes] = []
    cancel_child = LocalBackend.cancel_child

    def recorded(self: LocalBackend, run_id: str, *args: object) -> None:
        asked.append(DURABLE.of("p"))
        cancel_child(self, run_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalBackend, "cancel_child", recorded)
    run = workflows.execute_workflow(LeavesBlockedChild, execution_id="p", home=home)
    assert asyncio.run(run) == "done"
    [durable] = asked
    assert completion(1) in durable  # the parent's until_blocked step


@workflows.workflow.define(name="test_step_durability_answers")
class AnswersWhileLive:
    """Stays live (a timer) until ``finish``; ``set`` answers with the value it was given."""

    def __init__(self) -> None:
        self.value = 0
        self.finished = False

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await workflows.workflow.wait_condition(lambda: self.finished, timeout=600)
        return self.value

    @workflows.workflow.update
    def set(self, value: int) -> int:
        self.value = value
        return value

    @workflows.workflow.signal
    def finish(self) -> None:
        self.finished = True


def test_an_update_s_answer_is_durable_when_its_sender_reads_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender takes the answer as done: a power cut must not take it back, even while the
    run goes on waiting (it used to stay unsynced until the run's next sync)."""
    from wfrun.local import backend

    read: list[bytes] = []
    answer = backend._answer

    def reading(history: object, message: str) -> object:
        found = answer(history, message)  # type: ignore[arg-type]
        if found is not None:
            read.append(DURABLE.of("u"))
        return found

    monkeypatch.setattr(backend, "_answer", reading)

    async def scenario() -> tuple[int, int]:
        run = asyncio.create_task(workflows.execute_workflow(AnswersWhileLive, execution_id="u"))
        while not RunStore().path("u").exists():  # created, and held by the live run
            await asyncio.sleep(0.01)
        answered = await workflows.update_workflow("u", "set", {"value": 7})
        await workflows.signal_workflow("u", "finish")
        return answered, await run

    assert asyncio.run(scenario()) == (7, 7)
    assert read
    assert b'"type":"UpdateCompleted"' in read[0]


#: What of the parent's history was durable when its child's activity ran.
PARENT_AT_CHILD: list[bytes] = []


@workflows.activity
async def noted_in_child(n: int) -> int:
    PARENT_AT_CHILD.append(DURABLE.of("parent"))
    return n


@workflows.workflow.define(name="test_step_durability_child")
class NotingChild:
    @workflows.workflow.entrypoint
    async def run(self, n: int) -> int:
        return await noted_in_child(n)


@workflows.activity
async def meanwhile() -> None:
    await asyncio.sleep(0.2)


@workflows.workflow.define(name="test_step_durability_parent")
class StepThenChild:
    """Starts its child while an activity of its own runs (it does not stop to wait, then)."""

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        running = asyncio.ensure_future(meanwhile())
        first = await noted(1)
        child = await workflows.workflow.execute_workflow(NotingChild, {"n": first + 1})
        await running
        return child


def test_a_child_starts_only_once_what_the_parent_decided_it_from_is_durable(
    home: Path,
) -> None:
    PARENT_AT_CHILD.clear()
    run = workflows.execute_workflow(StepThenChild, execution_id="parent", home=home)
    assert asyncio.run(run) == 2
    [durable] = PARENT_AT_CHILD
    assert completion(2) in durable  # `noted`, whose result is the child's input


class Approval(pydantic.BaseModel):
    ok: bool


@workflows.workflow.define(name="test_step_durability_asks")
class AsksWhileAnActivityRuns(workflows.InteractiveWorkflow):
    """Asks a person for an input after a step, while an activity of its own runs (so it does
    not stop to wait, and nothing else lands the step's sync first)."""

    @workflows.workflow.entrypoint
    async def run(self) -> bool:
        running = asyncio.ensure_future(meanwhile())
        await noted(1)
        answer = await self.wait_for_input(Approval, label="approval")
        await running
        return answer.ok


def test_a_person_is_asked_only_once_what_led_to_the_question_is_durable(home: Path) -> None:
    """The form reaches a person, who answers it (and may act on it): the step the workflow
    asked after must be durable by then, as for anything else that leaves the run."""
    from wfrun.definitions import require_workflow_definition
    from wfrun.loader import target_of
    from wfrun.local.backend import LocalBackend

    seen: list[bytes] = []

    def ask(label: str, schema: object) -> dict[str, bool]:
        seen.append(DURABLE.of("asker"))
        return {"ok": True}

    definition = require_workflow_definition(AsksWhileAnActivityRuns)
    started = LocalBackend(home).start(
        definition,
        definition.encode_input({}),
        target=target_of(AsksWhileAnActivityRuns),
        run_id="asker",
        ask=ask,
    )
    assert str(asyncio.run(started).status) == "COMPLETED"
    [durable] = seen
    assert completion(2) in durable  # `noted`, after which the workflow asked


#: What of the run's history was durable when its activity learnt it was cancelled.
AT_CANCEL: list[bytes] = []


@workflows.activity
async def cancelled_later() -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        AT_CANCEL.append(DURABLE.of(workflows.activity_info().run_id))
        raise


@workflows.workflow.define(name="test_step_durability_cancels")
class CancelsAfterAStep:
    """Cancels an activity of its own once a step tells it to, while another activity of
    its own runs (so it does not stop to wait, and nothing else lands the step's sync first)."""

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        other = asyncio.ensure_future(meanwhile())
        running = asyncio.ensure_future(cancelled_later())
        n = await noted(1)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await other
        return n


def test_an_activity_is_cancelled_only_once_what_decided_it_is_durable(home: Path) -> None:
    """An activity's body sees its cancellation (and may act on it: a compensation): the
    step that led the workflow to cancel it must be durable by then, as it is for a child."""
    AT_CANCEL.clear()
    run = workflows.execute_workflow(CancelsAfterAStep, execution_id="c", home=home)
    assert asyncio.run(run) == 1
    [durable] = AT_CANCEL
    assert completion(3) in durable  # `noted`, after which the workflow cancelled
