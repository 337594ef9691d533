"""Replay's fast path: an awaited activity is resolved at once from its recorded outcome, and
only where the ordinary path (the task suspends, the loop runs dry, the next event is
delivered) would have done exactly the same."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.errors import NonDeterminismError
from wfrun.local.commands import StartTimer
from wfrun.local.engine import replay_only
from wfrun.local.loop import WorkflowLoop
from wfrun.local.store import RunStore
from wfrun.testing import replay

from conftest import count_awaitables, run_live, signed


@workflows.activity
async def echo(value: int) -> int:
    return value


@workflows.workflow.define(name="fast_replay_clock")
class ClockWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> list[str]:
        seen = []
        for i in range(steps):
            await echo(i)
            seen.append(workflows.workflow.now().isoformat())
        return seen


@workflows.workflow.define(name="fast_replay_loop_clock")
class LoopClockWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> list[object]:
        loop = asyncio.get_running_loop()
        seen: list[object] = []
        for i in range(steps):
            await echo(i)
            if i % 2:  # every other step leaves its time unread
                seen.append(loop.time())
        await echo(steps)
        await asyncio.sleep(0.01)  # a timer started at the replayed step's time
        seen.append(workflows.workflow.now().isoformat())
        return seen


@workflows.workflow.define(name="fast_replay_ready_task")
class ReadyTaskWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> list[object]:
        order: list[object] = []

        async def aside() -> None:
            order.append("aside")

        task = asyncio.create_task(aside())  # ready when the activity below is awaited
        order.append(await echo(1))
        await task
        order.append(await echo(2))
        return order


@workflows.workflow.define(name="fast_replay_swallowing")
class SwallowingWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> list[int]:
        values = []
        for i in range(steps):
            try:
                values.append(await echo(i))
            except Exception:  # code that catches everything must not hide a mismatch
                values.append(-1)
        return values


@workflows.workflow.define(name="fast_replay_stored_call")
class StoredCallWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> list[int]:
        values = []
        for i in range(steps):
            call = echo(i)  # made, then awaited: not awaited where it is made
            values.append(await call)
        return values


@workflows.workflow.define(name="fast_replay_hashes")
class HashesWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> list[int]:
        for i in range(steps):
            await echo(i)

        async def aside() -> None:
            pass

        task = asyncio.create_task(aside())
        await task
        return [hash(task), hash(asyncio.get_running_loop().create_future())]


def rewrite_line(path: Path, number: int, change: dict[str, object]) -> None:
    """Edit one event and sign it again: the history is valid, but disagrees with the code."""
    lines = path.read_bytes().splitlines(keepends=True)
    event = orjson.loads(lines[number - 1])
    lines[number - 1] = signed({**event, **change})
    path.write_bytes(b"".join(lines))


def count_loop_turns(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    turns: list[int] = []
    original = WorkflowLoop.run_until_quiescent

    def counted(self: WorkflowLoop) -> None:
        turns.append(1)
        original(self)

    monkeypatch.setattr(WorkflowLoop, "run_until_quiescent", counted)
    return turns


@pytest.mark.usefixtures("isolated")
def test_a_sequential_replay_resolves_each_activity_without_a_loop_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = run_live(ClockWorkflow, "sequential", {"steps": 20})
    turns = count_loop_turns(monkeypatch)
    replay(path, ClockWorkflow)
    assert len(turns) == 1  # the first activation; every outcome was then delivered at once


@pytest.mark.usefixtures("isolated")
def test_an_outcome_delivered_at_once_sets_the_workflow_clock_to_its_event() -> None:
    path = run_live(ClockWorkflow, "clock", {"steps": 5})
    events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    completed = [e["ts"] for e in events if e["type"] == "ActivityCompleted"]
    result = replay(path, ClockWorkflow)  # raises if the code returned other times
    assert len(set(completed)) == 5
    assert result is not None


@pytest.mark.usefixtures("isolated")
def test_the_loop_clock_and_a_timer_after_outcomes_delivered_at_once_are_the_events() -> None:
    path = run_live(LoopClockWorkflow, "loop-clock", {"steps": 6})
    replay(path, LoopClockWorkflow)  # raises if the code returned other loop times
    # Cut after the last activity: replayed again, the timer is what the code asks next.
    lines = path.read_bytes().splitlines(keepends=True)
    last = max(n for n, line in enumerate(lines) if b'"ActivityCompleted"' in line)
    path.write_bytes(b"".join(lines[: last + 1]))
    history = RunStore(Path.cwd() / "home").read("loop-clock")
    _, found = replay_only(LoopClockWorkflow.__wfrun_workflow__, history.events)  # type: ignore[attr-defined]
    (timer,) = found.backlog
    assert isinstance(timer, StartTimer)
    assert timer.due == history.events[-1].time + timedelta(seconds=0.01)


@pytest.mark.usefixtures("isolated")
def test_a_task_ready_when_an_activity_is_awaited_runs_before_its_outcome_on_replay() -> None:
    path = run_live(ReadyTaskWorkflow, "ready")
    final = orjson.loads(path.read_bytes().splitlines()[-1])
    assert final["result"] == ["aside", 1, 2]
    replay(path, ReadyTaskWorkflow)  # a replay that ran the activity first would return [1, ...]


@pytest.mark.usefixtures("isolated")
def test_an_edited_input_is_reported_even_where_the_code_catches_every_error() -> None:
    path = run_live(SwallowingWorkflow, "input", {"steps": 3})
    rewrite_line(path, 5, {"input": {"value": 99}})  # step 2's ActivityScheduled
    with pytest.raises(NonDeterminismError) as caught:
        replay(path, SwallowingWorkflow)
    assert caught.value.event_id == 5


@pytest.mark.usefixtures("isolated")
def test_a_result_that_no_longer_fits_is_reported_even_where_the_code_catches_every_error() -> None:
    path = run_live(SwallowingWorkflow, "result", {"steps": 3})
    rewrite_line(path, 7, {"result": "not a number"})  # step 2's ActivityCompleted
    with pytest.raises(NonDeterminismError) as caught:
        replay(path, SwallowingWorkflow)
    assert caught.value.event_id == 7


@pytest.mark.usefixtures("isolated")
def test_an_activity_awaited_where_it_is_called_replays_without_an_awaitable_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = run_live(ClockWorkflow, "at-call", {"steps": 20})
    made = count_awaitables(monkeypatch)
    replay(path, ClockWorkflow)
    assert made == []  # each outcome was handed back by the call itself


@pytest.mark.usefixtures("isolated")
def test_an_activity_call_awaited_later_than_it_is_made_replays_the_ordinary_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = run_live(StoredCallWorkflow, "stored", {"steps": 5})
    made = count_awaitables(monkeypatch)
    replay(path, StoredCallWorkflow)
    assert len(made) == 5  # between the call and its await, other code could run


@pytest.mark.usefixtures("isolated")
def test_tasks_and_futures_made_after_replayed_calls_keep_their_live_hashes() -> None:
    # The workflow returns the hashes: a replay that numbered them otherwise would not match
    # the result the history recorded (and would iterate asyncio.wait's sets otherwise).
    path = run_live(HashesWorkflow, "hashes", {"steps": 3})
    replay(path, HashesWorkflow)


def test_a_future_made_on_the_workflow_loop_runs_no_python_code() -> None:
    # One is made per replayed call: asyncio's future asks its loop get_debug() as it is made.
    loop = WorkflowLoop(owner=None, now=0.0)  # type: ignore[arg-type]  # never run here
    calls: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        if event == "call":
            calls.append(str(frame))

    sys.setprofile(profile)
    try:
        asyncio.Future(loop=loop)
    finally:
        sys.setprofile(None)
    assert calls == []
