"""Concurrent workflows replay exactly: a resume delivers results in the order the live run saw.

Each test kills a real process with SIGKILL during the final, long activity, then resumes it
with every timing reversed: anything executed again instead of replayed would change the
result, and no completed activity may run twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest

from conftest import attempts, kill_when, run_wfrun, spawn_wfrun, wf

pytestmark = pytest.mark.slow

REVERSED = json.dumps(
    {"slow": 0.01, "mid": 0.1, "fast": 0.3, "g1": 0.2, "g2": 0.01, "later": 0.01, "deadline": 0.3}
)


def scheduled(name: str):
    """Predicate: the activity called ``name`` has started."""

    def check(events: list[dict]) -> bool:
        seqs = {
            e["seq"]
            for e in events
            if e["type"] == "ActivityScheduled" and e["input"].get("name") == name
        }
        return any(e["type"] == "ActivityStarted" and e["seq"] in seqs for e in events)

    return check


def completion_order(events: list[dict]) -> list[str]:
    """The names of the activities, in the order the live run recorded their results."""
    names = {e["seq"]: e["input"].get("name") for e in events if e["type"] == "ActivityScheduled"}
    return [names[e["seq"]] for e in events if e["type"] == "ActivityCompleted"]


def crash_and_resume(home: Path, workflow: str, run_id: str) -> tuple[dict, list[dict]]:
    process = spawn_wfrun("start", f"{wf('race')}:{workflow}", "--run-id", run_id)
    before = kill_when(process, home, run_id, scheduled("later"))
    resumed = run_wfrun("resume", run_id, "--quiet", env={"WFRUN_TEST_DELAYS": REVERSED})
    assert resumed.returncode == 0, resumed.stderr
    return orjson.loads(resumed.stdout), before


def test_as_completed_then_gather_resume_in_the_live_order(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, "RaceWorkflow", "race")
    live = completion_order(before)
    assert result["order"] == [n for n in live if n in ("slow", "mid", "fast")]
    assert result["gathered"] == ["g1", "g2"]  # gather keeps argument order, whatever came first
    for name in ("slow", "mid", "fast", "g1", "g2"):
        assert attempts(log, name) == 1, name
    assert attempts(log, "later") == 2


def test_now_random_and_uuid4_are_identical_across_a_crash(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, "RaceWorkflow", "stamp")
    [noted] = [
        e["input"]["values"]
        for e in before
        if e["type"] == "ActivityScheduled" and "values" in e["input"]
    ]
    assert result["stamp"] == noted  # computed live before the kill, recomputed on replay


def test_wait_first_completed_resumes_with_the_live_winner(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, "FirstCompletedWorkflow", "first")
    assert result == {"winner": completion_order(before)[0], "losers": 1}
    assert attempts(log, "fast") == 1
    assert attempts(log, "slow") == 1
    assert any(e["type"] == "ActivityCanceled" for e in before)


def test_a_timer_racing_an_activity_resumes_with_the_live_outcome(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, "TimerRaceWorkflow", "timer")
    kinds = [e["type"] for e in before if e["type"] in ("TimerFired", "ActivityCompleted")]
    assert result == {"result": "timed out" if kinds[0] == "TimerFired" else "slow"}
    assert attempts(log, "slow") == 1


def test_the_deterministic_helpers_resume_in_the_live_order(home: Path, log: Path) -> None:
    result, before = crash_and_resume(home, "HelpersWorkflow", "helpers")
    live = completion_order(before)
    assert result["order"] == [n.upper() for n in live if n in ("slow", "mid", "fast")]
    first = next(n for n in live if n in ("g1", "g2"))
    assert result["first"] == [first.upper()]
    for name in ("slow", "mid", "fast", "g1", "g2"):
        assert attempts(log, name) == 1, name


def test_a_timer_killed_half_way_waits_only_the_remainder(home: Path) -> None:
    process = spawn_wfrun(
        "start", f"{wf('timers')}:NapWorkflow", "--arg", "seconds=3", "--run-id", "nap"
    )
    events = kill_when(
        process, home, "nap", lambda ev: any(e["type"] == "TimerStarted" for e in ev)
    )
    [timer] = [e for e in events if e["type"] == "TimerStarted"]
    time.sleep(max(0.0, 1.0 - (time.time() - _epoch(timer["ts"]))))  # 1 s gone, 2 s left
    resumed = run_wfrun("resume", "nap", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout)["slept"] >= 3.0
    after = {e["type"]: e for e in _events(home, "nap")}
    fired = _epoch(after["TimerFired"]["ts"])
    waited = fired - _epoch(after["RunResumed"]["ts"])
    assert fired >= _epoch(timer["due"])
    assert waited < 2.6  # the 2 s that were left, not the whole 3 s again


def _events(home: Path, run_id: str) -> list[dict]:
    return [orjson.loads(x) for x in (home / "runs" / f"{run_id}.jsonl").read_bytes().splitlines()]


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts).timestamp()
