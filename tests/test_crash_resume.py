"""A real process killed in the middle of a run, then resumed: nothing completed runs again."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from conftest import (
    attempts,
    completed,
    history,
    kill_when,
    list_runs_json,
    run_wfrun,
    spawn_wfrun,
    wait_for,
    wf,
)

pytestmark = pytest.mark.slow

STEPS = f"{wf('steps')}:StepsWorkflow"


def test_a_run_killed_mid_activity_resumes_without_rerunning_completed_steps(
    home: Path, log: Path
) -> None:
    process = spawn_wfrun(
        "start", STEPS, "--arg", "count=6", "--arg", "delay=0.3", "--run-id", "crash"
    )
    before = kill_when(
        process,
        home,
        "crash",
        lambda ev: completed(ev) == 3 and ev[-1]["type"] == "ActivityStarted",
    )
    assert process.returncode == -signal.SIGKILL
    assert [attempts(log, f"step{n}") for n in range(1, 5)] == [1, 1, 1, 1]

    resumed = run_wfrun("resume", "crash", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == {
        "run_id": "crash",
        "status": "COMPLETED",
        "result": [10, 20, 30, 40, 50, 60],
    }
    assert [attempts(log, f"step{n}") for n in (1, 2, 3)] == [1, 1, 1]
    assert attempts(log, "step4") == 2  # in flight at the kill: at least once, at most twice
    assert [attempts(log, f"step{n}") for n in (5, 6)] == [1, 1]
    after = history(home, "crash")
    assert after[: len(before)] == before  # the recorded past is never rewritten
    assert [e["id"] for e in after] == list(range(1, len(after) + 1))
    assert sum(e["type"] == "RunResumed" for e in after) == 1


def test_a_run_killed_between_steps_resumes_with_the_next_step(home: Path, log: Path) -> None:
    process = spawn_wfrun(
        "start", STEPS, "--arg", "count=4", "--arg", "delay=0.3", "--run-id", "between"
    )
    kill_when(process, home, "between", lambda ev: completed(ev) == 2)
    resumed = run_wfrun("resume", "between", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == [10, 20, 30, 40]
    assert [attempts(log, f"step{n}") for n in (1, 2)] == [1, 1]
    assert attempts(log, "step3") in (1, 2)


def test_a_resumed_run_can_itself_be_killed_and_resumed(home: Path, log: Path) -> None:
    process = spawn_wfrun(
        "start", STEPS, "--arg", "count=5", "--arg", "delay=0.3", "--run-id", "twice"
    )
    kill_when(process, home, "twice", lambda ev: completed(ev) == 1)
    second = spawn_wfrun("resume", "twice")
    kill_when(second, home, "twice", lambda ev: completed(ev) == 3)
    resumed = run_wfrun("resume", "twice", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == [10, 20, 30, 40, 50]
    assert attempts(log, "step1") == 1
    events = history(home, "twice")
    assert sum(e["type"] == "RunResumed" for e in events) == 2
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stop_the_run_cleanly_with_exit_130(
    home: Path, log: Path, signum: int
) -> None:
    process = spawn_wfrun(
        "start", STEPS, "--arg", "count=4", "--arg", "delay=0.5", "--run-id", "stop"
    )
    kill_when(process, home, "stop", lambda ev: completed(ev) == 1, signum=signum)
    assert process.returncode == 130
    assert "wfrun resume stop" in process.stderr.read()
    listed = list_runs_json()
    assert listed[0]["status"] == "INTERRUPTED"
    resumed = run_wfrun("resume", "stop", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == [10, 20, 30, 40]
    assert attempts(log, "step1") == 1


def test_a_second_process_on_a_live_run_exits_5_and_runs_nothing(home: Path, log: Path) -> None:
    # Long enough (4 x 1 s) to outlast three more process starts on a busy machine.
    process = spawn_wfrun(
        "start", STEPS, "--arg", "count=4", "--arg", "delay=1.0", "--run-id", "busy"
    )
    try:
        wait_for(home, "busy", lambda ev: ev and ev[-1]["type"] == "ActivityStarted")
        listed = list_runs_json()
        assert listed[0]["status"] == "RUNNING"
        for args in (["resume", "busy"], ["start", STEPS, "--arg", "count=4", "--run-id", "busy"]):
            second = run_wfrun(*args)
            assert second.returncode == 5, second.stderr
            assert "locked" in second.stderr
    finally:
        process.wait(timeout=30)
    assert process.returncode == 0
    assert attempts(log, "step1") == 1
