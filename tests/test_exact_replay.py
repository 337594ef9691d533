"""Concurrent workflows replay exactly: a resume delivers results in the order the live run saw.

Each race test kills a real process with SIGKILL while the body of the final activity runs (it
logs that it started, and stays), then resumes it with every timing reversed: anything executed
again instead of replayed would change the result, and no completed activity may run twice.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.testing import FakeClock

from conftest import (
    TESTS,
    attempts,
    cut_history,
    history,
    hold,
    kill_after_marker,
    run_wfrun,
    spawn_wfrun,
    wf,
)
from flows.timers import NapWorkflow

pytestmark = pytest.mark.slow

REVERSED = json.dumps(
    {"slow": 0.01, "mid": 0.1, "fast": 0.3, "g1": 0.2, "g2": 0.01, "later": 0.01, "deadline": 0.3}
)


def completion_order(events: list[dict]) -> list[str]:
    """The names of the activities, in the order the live run recorded their results."""
    names = {e["seq"]: e["input"].get("name") for e in events if e["type"] == "ActivityScheduled"}
    return [names[e["seq"]] for e in events if e["type"] == "ActivityCompleted"]


def crash_and_resume(home: Path, log: Path, workflow: str, run_id: str) -> tuple[dict, list[dict]]:
    """Kill the live run once the body of "later" runs (and stays); resume with reversed timings."""
    process = spawn_wfrun(
        "start", f"{wf('race')}:{workflow}", "--run-id", run_id, env=hold("later")
    )
    kill_after_marker(process, log, "later")
    before = history(home, run_id)  # read after the kill: what the crash left
    resumed = run_wfrun("resume", run_id, "--quiet", env={"WFRUN_TEST_DELAYS": REVERSED})
    assert resumed.returncode == 0, resumed.stderr
    return orjson.loads(resumed.stdout), before


def test_as_completed_then_gather_resume_in_the_live_order(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, log, "RaceWorkflow", "race")
    live = completion_order(before)
    assert result["order"] == [n for n in live if n in ("slow", "mid", "fast")]
    assert result["gathered"] == ["g1", "g2"]  # gather keeps argument order, whatever came first
    for name in ("slow", "mid", "fast", "g1", "g2"):
        assert attempts(log, name) == 1, name
    assert attempts(log, "later") == 2


def test_now_random_and_uuid4_are_identical_across_a_crash(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, log, "RaceWorkflow", "stamp")
    [noted] = [
        e["input"]["values"]
        for e in before
        if e["type"] == "ActivityScheduled" and "values" in e["input"]
    ]
    assert result["stamp"] == noted  # computed live before the kill, recomputed on replay


def test_wait_first_completed_resumes_with_the_live_winner(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, log, "FirstCompletedWorkflow", "first")
    assert result == {"winner": completion_order(before)[0], "losers": 1}
    assert attempts(log, "fast") == 1
    assert attempts(log, "slow") == 1
    assert any(e["type"] == "ActivityCanceled" for e in before)


def test_a_timer_racing_an_activity_resumes_with_the_live_outcome(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, log, "TimerRaceWorkflow", "timer")
    kinds = [e["type"] for e in before if e["type"] in ("TimerFired", "ActivityCompleted")]
    assert result == {"result": "timed out" if kinds[0] == "TimerFired" else "slow"}
    assert attempts(log, "slow") == 1


def test_the_deterministic_helpers_resume_in_the_live_order(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, log, "HelpersWorkflow", "helpers")
    live = completion_order(before)
    assert result["order"] == [n.upper() for n in live if n in ("slow", "mid", "fast")]
    first = next(n for n in live if n in ("g1", "g2"))
    assert result["first"] == [first.upper()]
    for name in ("slow", "mid", "fast", "g1", "g2"):
        assert attempts(log, name) == 1, name


def test_a_timer_killed_half_way_waits_only_the_remainder(home: Path) -> None:
    # No activity body marks how far a timer got, so the crash is made, not raced: an hour-long
    # timer that started 3598 s ago, its history cut right after TimerStarted.
    started = datetime.now(UTC) - timedelta(seconds=3598)
    asyncio.run(
        workflows.execute_workflow(
            NapWorkflow, {"seconds": 3600}, execution_id="nap", clock=FakeClock(started)
        )
    )
    cut_history("nap", keep=2)
    # A real process on the real clock: waiting the whole hour again would hang until the
    # process timeout; firing at once would fire before the recorded due time.
    resumed = run_wfrun("resume", "nap", "--quiet", env={"PYTHONPATH": str(TESTS)})  # flows.timers
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout)["slept"] >= 3600
    after = {e["type"]: e for e in history(home, "nap")}
    assert parse(after["TimerFired"]["ts"]) >= parse(after["TimerStarted"]["due"])


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)
