"""An ``async def`` activity starts eagerly: its first step runs as the engine starts it, in a
task of its own, and one that finishes there reports its outcome with no turn of the loop.
What the activity observes is what it observed in a task started the ordinary way."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import wfrun as workflows
from wfrun.local import engine
from wfrun.local.eager import start_eagerly
from wfrun.local.store import RunStore

#: What each activity saw, in the order they ran.
seen: list[dict[str, Any]] = []
#: Set inside an activity: a copy of the context is the activity's own, as a task's is.
marker: contextvars.ContextVar[int | None] = contextvars.ContextVar("marker", default=None)


@workflows.activity
async def observes(i: int) -> int:
    before = asyncio.current_task()
    inherited = marker.get()
    marker.set(i)
    await asyncio.sleep(0)  # suspended once: it goes on in the same task
    seen.append(
        {
            "task": before,
            "same_task": asyncio.current_task() is before,
            "inherited": inherited,
            "info": (workflows.activity_info().activity_id, workflows.activity_info().attempt),
        }
    )
    return i


@workflows.activity
async def at_once(i: int) -> int:
    seen.append({"task": asyncio.current_task(), "inherited": marker.get()})
    marker.set(i)
    return i


@workflows.activity(start_to_close_timeout=timedelta(milliseconds=50))
async def sleeps_past_its_limit() -> int:
    await asyncio.sleep(3600)
    return 1


flaky_runs: list[int] = []


@workflows.activity(retry_policy_max_attempts=3, retry_policy_initial_interval=0.001)
async def fails_at_once_twice() -> int:
    flaky_runs.append(workflows.activity_info().attempt)
    if len(flaky_runs) < 3:
        raise ConnectionError("not yet")
    return len(flaky_runs)


@workflows.activity
async def finds_its_start_written(i: int) -> bool:
    info = workflows.activity_info()
    path = RunStore(Path.cwd() / "home").path(info.run_id)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip(b"\0")]
    return {"type": "ActivityStarted", "seq": info.activity_id} in [
        {"type": e["type"], "seq": e.get("seq")} for e in lines
    ]


@workflows.workflow.define(name="eager_finds_its_start")
class FindsItsStart:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> list[bool]:
        return [await finds_its_start_written(i) for i in range(steps)]


@workflows.workflow.define(name="eager_observes")
class Observes:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await observes(i)
        return total


@workflows.workflow.define(name="eager_at_once")
class AtOnce:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await at_once(i)
        return total


@workflows.workflow.define(name="eager_times_out")
class TimesOut:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            await sleeps_past_its_limit()
        except workflows.ActivityError as exc:
            return type(exc.cause).__name__ if exc.cause is not None else "no cause"
        return "no error"


@workflows.workflow.define(name="eager_retries")
class Retries:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        return await fails_at_once_twice()


@pytest.fixture(autouse=True)
def _fresh() -> None:
    seen.clear()
    flaky_runs.clear()


def run(workflow: type, run_id: str, params: object = None) -> Any:
    return asyncio.run(workflows.execute_workflow(workflow, params, execution_id=run_id))


def test_an_activity_sees_a_task_of_its_own_as_current_task_before_and_after_it_suspends() -> None:
    assert run(Observes, "own-task", {"steps": 3}) == 3
    tasks = [s["task"] for s in seen]
    assert all(isinstance(t, asyncio.Task) for t in tasks)
    assert [t.get_name() for t in tasks] == [f"wfrun activity observes#{i}" for i in (1, 2, 3)]
    assert all(s["same_task"] for s in seen)


def test_an_activity_that_finishes_at_once_runs_in_a_task_of_its_own() -> None:
    assert run(AtOnce, "at-once", {"steps": 3}) == 3
    tasks = [s["task"] for s in seen]
    assert [t.get_name() for t in tasks] == [f"wfrun activity at_once#{i}" for i in (1, 2, 3)]
    assert all(t.done() for t in tasks)


def test_a_context_variable_an_activity_sets_stays_its_own() -> None:
    assert run(AtOnce, "context", {"steps": 3}) == 3
    assert [s["inherited"] for s in seen] == [None, None, None]


def test_an_activity_s_info_is_its_own_call_s() -> None:
    assert run(Observes, "info", {"steps": 2}) == 1
    assert [s["info"] for s in seen] == [(1, 1), (2, 1)]


def test_an_activity_that_suspends_is_timed_out_as_before() -> None:
    assert run(TimesOut, "timeout") == "TimeoutError"


def test_an_activity_failing_as_it_starts_is_retried_as_before() -> None:
    assert run(Retries, "retries") == 3
    assert flaky_runs == [1, 2, 3]


def test_an_activity_s_first_step_comes_after_its_start_is_written() -> None:
    assert run(FindsItsStart, "written", {"steps": 3}) == [True, True, True]


def test_activities_that_finish_at_once_take_no_turn_of_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "_TURN", 3600.0)  # never a turn handed over for time's sake
    turns = count_turns(monkeypatch)
    assert run(AtOnce, "no-turns", {"steps": 50}) == sum(range(50))
    assert turns[0] < 25  # two a step when each activity was a task the loop started


def test_a_run_whose_activities_finish_at_once_still_hands_the_loop_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "_TURN", 0.0)  # a turn after every batch of reports
    ticks: list[int] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()

        def tick() -> None:
            ticks.append(1)
            loop.call_soon(tick)

        loop.call_soon(tick)
        result: int = await workflows.execute_workflow(AtOnce, {"steps": 50}, execution_id="turns")
        return result

    assert asyncio.run(main()) == sum(range(50))
    assert len(ticks) >= 50


def test_an_eagerly_started_task_runs_its_first_step_before_the_call_returns() -> None:
    async def main() -> list[str]:
        steps: list[str] = []

        async def work() -> str:
            steps.append("first step")
            await asyncio.sleep(0)
            steps.append("second step")
            return "done"

        outer = asyncio.current_task()
        task = start_eagerly(work(), "eager")
        steps.append("started")
        assert asyncio.current_task() is outer  # the caller's task is current again
        assert await task == "done"
        return steps

    assert asyncio.run(main()) == ["first step", "started", "second step"]


def count_turns(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the event loop's turns (`_run_once`) from now on."""
    turns = [0]
    original = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]

    def counted(self: asyncio.BaseEventLoop) -> None:
        turns[0] += 1
        original(self)

    monkeypatch.setattr(asyncio.BaseEventLoop, "_run_once", counted)
    return turns


def test_an_eager_start_keeps_a_call_soon_the_loop_already_had_of_its_own() -> None:
    async def main() -> tuple[bool, list[str]]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        original = loop.call_soon

        def instrumented(callback: Any, *args: Any, context: Any = None) -> Any:
            seen.append(getattr(callback, "__name__", repr(callback)))
            return original(callback, *args, context=context)

        loop.call_soon = instrumented  # type: ignore[method-assign,assignment]

        async def work() -> int:
            return 1

        assert await start_eagerly(work(), "eager") == 1
        kept = loop.__dict__.get("call_soon") is instrumented
        seen.clear()
        loop.call_soon(lambda: None)
        return kept, list(seen)  # a copy: the loop calls it again as it ends

    kept, seen = asyncio.run(main())
    assert kept
    assert seen == ["<lambda>"]


def test_eager_starts_on_loops_of_two_threads_each_run_their_own_first_step() -> None:
    failures: list[BaseException] = []
    rounds = 100_000

    def worker(tag: str) -> None:
        async def main() -> None:
            for i in range(rounds):
                ran: list[str] = []

                async def work(mine: str = f"{tag}{i}", ran: list[str] = ran) -> None:
                    ran.append(mine)

                # Its first step runs inline: nothing to await, nothing left pending.
                start_eagerly(work(), None)
                if ran != [f"{tag}{i}"]:
                    raise AssertionError(f"thread {tag}, round {i}: first steps run {ran}")

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            # Not asyncio.run: it waits for every task to end, and a task whose first step was
            # lost is never stepped again (it hung the test).
            loop.close()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(t,)) for t in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == [], [f"{type(e).__name__}: {e}" for e in failures]


class _TracedTask(asyncio.Task):  # type: ignore[type-arg]
    """A task of the kind a task factory makes (tracing, context propagation, monitors)."""


@workflows.activity
async def names_its_task_kind() -> str:
    return type(asyncio.current_task()).__name__


@workflows.workflow.define(name="eager_task_kind")
class TaskKind:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        return await names_its_task_kind()


def test_an_activity_runs_in_a_task_made_by_the_loop_s_task_factory_as_before(home: Path) -> None:
    async def main() -> str:
        asyncio.get_running_loop().set_task_factory(
            lambda loop, coro, **kwargs: _TracedTask(coro, loop=loop, **kwargs)
        )
        result: str = await workflows.execute_workflow(TaskKind, None, execution_id="k", home=home)
        return result

    assert asyncio.run(main()) == "_TracedTask"
