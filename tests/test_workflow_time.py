"""Workflow time, durable timers and conditions, with an injected clock (no real waiting)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import wfrun as workflows
from wfrun.local.store import RunStore
from wfrun.testing import FakeClock

from conftest import cut_history
from flows.race import RaceWorkflow
from flows.timers import NapWorkflow, PatienceWorkflow

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def nap(seconds: float, clock: FakeClock, run_id: str = "nap") -> dict:
    return asyncio.run(
        workflows.execute_workflow(
            NapWorkflow, {"seconds": seconds}, execution_id=run_id, clock=clock
        )
    )


def test_a_durable_timer_waits_its_duration_on_the_engine_clock() -> None:
    clock = FakeClock(T0)
    result = nap(3600, clock)
    assert clock.slept == [3600]
    assert result == {"slept": 3600.0, "woke": "2026-03-01T10:00:00+00:00"}


def test_a_timer_is_recorded_with_its_due_time_and_when_it_fired() -> None:
    nap(60, FakeClock(T0))
    events = {e.type: e for e in RunStore().read("nap").events}
    assert events["TimerStarted"].duration == 60
    assert events["TimerStarted"].due == "2026-03-01T09:01:00.000000Z"
    assert events["TimerFired"].ts == "2026-03-01T09:01:00.000000Z"


def test_a_resumed_timer_waits_only_the_time_that_is_left() -> None:
    nap(3600, FakeClock(T0))
    cut_history("nap", keep=2)  # the crash came right after TimerStarted
    clock = FakeClock(T0 + timedelta(minutes=40))
    result = asyncio.run(workflows.resume_workflow("nap", clock=clock))
    assert clock.slept == [1200]
    assert result["slept"] == 3600.0


def test_a_timer_that_fell_due_while_the_run_was_down_fires_at_once() -> None:
    nap(3600, FakeClock(T0))
    cut_history("nap", keep=2)
    clock = FakeClock(T0 + timedelta(hours=5))
    result = asyncio.run(workflows.resume_workflow("nap", clock=clock))
    assert clock.slept[0] <= 0
    assert result["woke"] == "2026-03-01T14:00:00+00:00"  # when it actually fired


def test_retry_delays_of_a_resumed_activity_count_from_the_recorded_failure(log: Path) -> None:
    from flows.steps import FlakyWorkflow

    clock = FakeClock(T0)
    asyncio.run(
        workflows.execute_workflow(FlakyWorkflow, {"fail_times": 1}, execution_id="f", clock=clock)
    )
    cut_history("f", keep=4)  # the first attempt failed (retry in 10 ms); then the crash
    resumed = FakeClock(T0 + timedelta(milliseconds=4))
    asyncio.run(workflows.resume_workflow("f", clock=resumed))
    assert resumed.slept == [0.006]  # 10 ms after the failure, 4 ms of which had passed
    after_resume = RunStore().read("f").events[4:]
    assert [e.attempt for e in after_resume if e.type == "ActivityStarted"] == [2]


def test_wait_condition_returns_when_another_task_makes_it_true() -> None:
    result = asyncio.run(
        workflows.execute_workflow(
            PatienceWorkflow, {"ready_after": 5, "timeout": 60}, clock=FakeClock(T0)
        )
    )
    assert result == "ready"


def test_wait_condition_times_out_with_timeout_error() -> None:
    result = asyncio.run(
        workflows.execute_workflow(
            PatienceWorkflow, {"ready_after": 120, "timeout": 60}, clock=FakeClock(T0)
        )
    )
    assert result == "gave up"


def test_workflow_time_is_the_time_of_the_event_being_processed(log: Path) -> None:
    clock = FakeClock(T0)
    result = asyncio.run(workflows.execute_workflow(RaceWorkflow, execution_id="r", clock=clock))
    events = RunStore().read("r").events
    completed = [e for e in events if e.type == "ActivityCompleted"]
    # "now" was read after the gather: the time of the last result the workflow received
    assert datetime.fromisoformat(result["stamp"]["now"]) <= completed[-2].time
    assert result["stamp"]["now"] in {e.time.isoformat() for e in completed}


def test_two_runs_get_different_random_streams(log: Path) -> None:
    first = asyncio.run(workflows.execute_workflow(RaceWorkflow, clock=FakeClock(T0)))
    second = asyncio.run(workflows.execute_workflow(RaceWorkflow, clock=FakeClock(T0)))
    assert first["stamp"]["random"] != second["stamp"]["random"]
    assert first["stamp"]["uuid"] != second["stamp"]["uuid"]


@pytest.fixture(autouse=True)
def _instant_race(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFRUN_TEST_DELAYS", '{"later": 0.0}')
