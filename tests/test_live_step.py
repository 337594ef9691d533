"""A live step's lean path: an activity awaited where it is called is handed back as its bare
future (no `WorkflowCall` around it), and the run takes the same course as through the
ordinary path, live and on replay."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import wfrun as workflows
from wfrun.local.loop import WorkflowLoop
from wfrun.local.store import RunStore
from wfrun.testing import replay

from conftest import count_awaitables


@workflows.activity
async def echo(value: int) -> int:
    return value


@workflows.activity
async def stalled(value: int) -> int:
    await asyncio.Event().wait()  # never set: only a cancellation ends it
    return value


@workflows.workflow.define(name="live_step_at_call")
class AtCallWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await echo(i)
        return total


@workflows.workflow.define(name="live_step_stored")
class StoredCallWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            call = echo(i)
            total += await call
        return total


@workflows.workflow.define(name="live_step_bad_input")
class BadInputWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        await echo(0)  # past the start, which is made as the (empty) history replays
        try:
            await echo(object())  # type: ignore[arg-type]  # no JSON for it
        except workflows.WfrunError as exc:
            return type(exc).__name__
        return "no error"


@workflows.workflow.define(name="live_step_cancelled")
class CancelledCallWorkflow:
    async def waits(self) -> int:
        return await stalled(1)

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await echo(0)  # past the start, which is made as the (empty) history replays
        task = asyncio.create_task(self.waits())
        await workflows.workflow.sleep(0.01)  # meanwhile the task makes its call
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await echo(2)


@workflows.workflow.define(name="live_step_reduced")
class ReducedWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        # A C function at an awaited call site makes two calls and keeps the last one.
        last: Any = await functools.reduce(lambda a, b: b, map(echo, [1, 2]))
        return int(last)


def run_live(workflow: type, run_id: str, params: object = None) -> tuple[object, Path]:
    result = asyncio.run(workflows.execute_workflow(workflow, params, execution_id=run_id))
    return result, RunStore(Path.cwd() / "home").path(run_id)


def events(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip(b"\0")]


@pytest.mark.usefixtures("isolated")
def test_an_activity_awaited_where_it_is_called_runs_live_without_an_awaitable_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = count_awaitables(monkeypatch)
    result, path = run_live(AtCallWorkflow, "at-call", {"steps": 5})
    assert result == 10
    assert len(made) == 1  # the first call only: it is made as the (empty) history replays
    replay(path, AtCallWorkflow)


@pytest.mark.usefixtures("isolated")
def test_an_activity_call_kept_for_later_runs_live_through_its_awaitable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = count_awaitables(monkeypatch)
    result, _ = run_live(StoredCallWorkflow, "stored", {"steps": 5})
    assert result == 10
    assert len(made) == 5  # other code could run between the call and its await


@pytest.mark.usefixtures("isolated")
def test_a_bad_input_awaited_where_it_is_called_fails_the_call_and_records_no_step() -> None:
    result, path = run_live(BadInputWorkflow, "bad")
    assert result == "EncodingError"
    scheduled = [e["input"] for e in events(path) if e["type"] == "ActivityScheduled"]
    assert scheduled == [{"value": 0}]


@pytest.mark.usefixtures("isolated")
def test_a_cancelled_task_cancels_the_activity_it_awaited_where_it_called_it() -> None:
    result, path = run_live(CancelledCallWorkflow, "cancelled")
    assert result == 2
    # Seq 2 is the timer, 3 the stalled call: cancelled as its task was, before the next
    # step (not only when the run ended).
    kinds = [(e["type"], e.get("seq")) for e in events(path)]
    assert kinds.index(("ActivityCanceled", 3)) < kinds.index(("ActivityScheduled", 4))
    replay(path, CancelledCallWorkflow)


@pytest.mark.usefixtures("isolated")
def test_calls_a_c_function_makes_at_an_awaited_call_site_take_the_same_course_on_replay() -> None:
    result, path = run_live(ReducedWorkflow, "reduced")
    assert result == 2
    replay(path, ReducedWorkflow)  # no call reported as never awaited here either


@workflows.workflow.define(name="live_step_stored_fails")
class StoredFailingWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        total = await echo(1)  # each kind of call: awaited at once, and kept for later
        call = echo(2)
        total += await call
        try:
            await fails()
        except workflows.ActivityError:
            total += 1
        return total


@workflows.activity(retry_policy_max_attempts=1)
async def fails() -> None:
    raise ValueError("no")


@pytest.mark.usefixtures("isolated")
def test_an_activity_s_outcome_schedules_no_callback_of_wfrun_s_beside_its_awaiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduled: list[str] = []
    original = WorkflowLoop.call_soon

    def recorded(self: WorkflowLoop, callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(getattr(getattr(callback, "func", callback), "__name__", "?"))
        return original(self, callback, *args, **kwargs)

    monkeypatch.setattr(WorkflowLoop, "call_soon", recorded)
    result, path = run_live(StoredFailingWorkflow, "outcomes")
    assert result == 4
    assert scheduled  # the awaiting tasks' wake-ups
    assert not [name for name in scheduled if "abandoned" in name]
    replay(path, StoredFailingWorkflow)


class TickingClock:
    """A real clock that moves a millisecond on at every reading (no two readings alike)."""

    def __init__(self) -> None:
        self._now = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@workflows.workflow.define(name="live_step_gathered")
class GatheredWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, count: int) -> int:
        return sum(await asyncio.gather(*(echo(i) for i in range(count))))


def _stamps(path: Path, kind: str) -> list[str]:
    return [e["ts"] for e in events(path) if e["type"] == kind]


def _gathered_run(run_id: str) -> Path:
    """Three calls gathered, on a clock that moves at every reading; the run's history."""
    run = workflows.execute_workflow(
        GatheredWorkflow, {"count": 3}, execution_id=run_id, clock=TickingClock()
    )
    assert asyncio.run(run) == 3
    return RunStore(Path.cwd() / "home").path(run_id)


@pytest.mark.usefixtures("isolated")
def test_calls_scheduled_together_and_their_starts_are_recorded_in_one_instant() -> None:
    path = _gathered_run("together")
    stamps = _stamps(path, "ActivityScheduled") + _stamps(path, "ActivityStarted")
    assert len(stamps) == 6
    assert len(set(stamps)) == 1
    replay(path, GatheredWorkflow)


@pytest.mark.usefixtures("isolated")
def test_outcomes_taken_together_are_recorded_in_one_instant_the_workflow_sees() -> None:
    path = _gathered_run("outcomes")
    [stamp] = set(_stamps(path, "ActivityCompleted"))
    # Later than the calls' own instant, and the time the workflow ended at.
    assert stamp > _stamps(path, "ActivityScheduled")[0]
    assert _stamps(path, "WorkflowCompleted")[0] > stamp
    replay(path, GatheredWorkflow)


@pytest.mark.usefixtures("isolated")
def test_a_call_scheduled_after_a_timer_in_the_same_step_reads_the_clock_again() -> None:
    assert (
        asyncio.run(
            workflows.execute_workflow(
                TimerThenCallWorkflow, execution_id="timer-call", clock=TickingClock()
            )
        )
        == 1
    )
    path = RunStore(Path.cwd() / "home").path("timer-call")
    [timer] = _stamps(path, "TimerStarted")
    [first, second] = _stamps(path, "ActivityScheduled")
    assert first < timer < second  # each recorded as it came: a timer is not a call


@workflows.workflow.define(name="live_step_timer_then_call")
class TimerThenCallWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        first = echo(0)
        timer = asyncio.ensure_future(workflows.workflow.sleep(0.001))
        second = echo(1)
        total = await first + await second
        await timer
        return total


@pytest.mark.usefixtures("isolated")
def test_a_task_made_for_a_call_steps_it_without_a_python_frame_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wfrun.local.loop import WorkflowCall

    sent: list[object] = []
    original = WorkflowCall.send

    def recorded(self: WorkflowCall[Any], value: Any) -> Any:
        sent.append(value)
        return original(self, value)

    monkeypatch.setattr(WorkflowCall, "send", recorded)
    result, path = run_live(GatheredWorkflow, "stepped", {"count": 3})
    assert result == 3
    assert sent == []  # each task sent to its call's future iterator, straight
    replay(path, GatheredWorkflow)


class _SkewedLoop(asyncio.SelectorEventLoop):
    """A loop with a clock of its own: a thousand seconds later at every reading."""

    readings = 0

    def time(self) -> float:
        self.readings += 1
        return super().time() + 1000.0 * self.readings


@pytest.mark.usefixtures("isolated")
def test_an_attempt_is_timed_on_the_clock_of_the_loop_it_runs_on() -> None:
    loop = _SkewedLoop()
    try:
        result = loop.run_until_complete(
            workflows.execute_workflow(AtCallWorkflow, {"steps": 1}, execution_id="skewed")
        )
    finally:
        loop.close()
    assert result == 0
    path = RunStore(Path.cwd() / "home").path("skewed")
    [completed] = [e for e in events(path) if e["type"] == "ActivityCompleted"]
    assert completed["duration"] >= 1000.0  # its readings, not the monotonic clock's


@workflows.activity(heartbeat_timeout=timedelta(minutes=1), retry_policy_max_attempts=1)
async def watched(value: int) -> int:
    return value


@workflows.workflow.define(name="live_step_watched")
class WatchedWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, value: int) -> int:
        return await watched(value)


@pytest.mark.usefixtures("isolated")
def test_an_attempt_reads_the_monotonic_clock_its_loop_reads_when_that_one_is_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    real = time.monotonic
    # A clock a test shifts (asyncio's loop reads ``time.monotonic`` at each call): the
    # attempt's start must be on it too, or its heartbeat silence looks days long.
    monkeypatch.setattr(time, "monotonic", lambda: real() + 1e6)
    result = asyncio.run(
        workflows.execute_workflow(WatchedWorkflow, {"value": 7}, execution_id="shifted")
    )
    assert result == 7
