"""A real process killed in the middle of a run, then resumed: nothing completed runs again."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from conftest import (
    attempts,
    history,
    hold,
    kill_after_marker,
    list_runs_json,
    release,
    run_wfrun,
    spawn_wfrun,
    wait_for_marker,
    wf,
)

pytestmark = pytest.mark.slow

STEPS = f"{wf('steps')}:StepsWorkflow"


def test_a_run_killed_mid_activity_resumes_without_rerunning_completed_steps(
    home: Path, log: Path
) -> None:
    process = spawn_wfrun(
        "start", STEPS, "--arg", "count=6", "--run-id", "crash", env=hold("step4")
    )
    kill_after_marker(process, log, "step4")  # step 4's body is running
    assert process.returncode == -signal.SIGKILL
    before = history(home, "crash")  # read after the kill: what the crash left
    assert [attempts(log, f"step{n}") for n in range(1, 6)] == [1, 1, 1, 1, 0]

    resumed = run_wfrun("resume", "crash", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == {
        "run_id": "crash",
        "status": "COMPLETED",
        "result": [10, 20, 30, 40, 50, 60],
    }
    assert [attempts(log, f"step{n}") for n in (1, 2, 3)] == [1, 1, 1]
    assert attempts(log, "step4") == 2  # in flight at the kill: it runs again
    assert [attempts(log, f"step{n}") for n in (5, 6)] == [1, 1]
    after = history(home, "crash")
    assert after[: len(before)] == before  # the recorded past is never rewritten
    assert [e["id"] for e in after] == list(range(1, len(after) + 1))
    assert sum(e["type"] == "RunResumed" for e in after) == 1


def test_a_run_killed_between_steps_resumes_with_the_next_step(home: Path, log: Path) -> None:
    process = spawn_wfrun(
        "start", STEPS, "--arg", "count=4", "--arg", "delay=0.3", "--run-id", "between"
    )
    # Step 3's body has started, so step 2's result was recorded: the kill lands after it,
    # as step 3 begins (or, on a slow machine, a little later: step 3 may have finished).
    kill_after_marker(process, log, "step3")
    resumed = run_wfrun("resume", "between", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == [10, 20, 30, 40]
    assert [attempts(log, f"step{n}") for n in (1, 2)] == [1, 1]
    assert attempts(log, "step3") in (1, 2)  # at least once; twice if the kill caught it


def test_a_resumed_run_can_itself_be_killed_and_resumed(home: Path, log: Path) -> None:
    process = spawn_wfrun(
        "start", STEPS, "--arg", "count=5", "--run-id", "twice", env=hold("step2")
    )
    kill_after_marker(process, log, "step2")
    second = spawn_wfrun("resume", "twice", env=hold("step4"))
    kill_after_marker(second, log, "step4")
    resumed = run_wfrun("resume", "twice", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == [10, 20, 30, 40, 50]
    # Each kill caught one step in flight; nothing that completed ran again.
    assert [attempts(log, f"step{n}") for n in range(1, 6)] == [1, 2, 1, 2, 1]
    events = history(home, "twice")
    assert sum(e["type"] == "RunResumed" for e in events) == 2
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stop_the_run_cleanly_with_exit_130(
    home: Path, log: Path, signum: int
) -> None:
    process = spawn_wfrun("start", STEPS, "--arg", "count=4", "--run-id", "stop", env=hold("step2"))
    kill_after_marker(process, log, "step2", signum=signum)
    assert process.returncode == 130
    assert "wfrun resume stop" in process.stderr.read()
    listed = list_runs_json()
    assert listed[0]["status"] == "INTERRUPTED"
    resumed = run_wfrun("resume", "stop", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == [10, 20, 30, 40]
    assert attempts(log, "step1") == 1
    assert attempts(log, "step2") == 2  # stopped in flight: it runs again


def test_a_second_process_on_a_live_run_exits_5_and_runs_nothing(home: Path, log: Path) -> None:
    process = spawn_wfrun("start", STEPS, "--arg", "count=4", "--run-id", "busy", env=hold("step1"))
    try:
        wait_for_marker(process, log, "step1")  # live, and held there until released
        listed = list_runs_json()
        assert listed[0]["status"] == "RUNNING"
        for args in (["resume", "busy"], ["start", STEPS, "--arg", "count=4", "--run-id", "busy"]):
            second = run_wfrun(*args)
            assert second.returncode == 5, second.stderr
            assert "locked" in second.stderr
    finally:
        release(log, "step1")
        process.wait(timeout=30)
    assert process.returncode == 0
    assert attempts(log, "step1") == 1
