"""Reading runs: history (table, JSON, follow), list, show, and the live view on a terminal."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from wfrun.cli.render import RunView
from wfrun.local.history import parse_line

from conftest import (
    cli,
    cut_history,
    hold,
    release,
    spawn_wfrun,
    through_a_pty,
    wait_for_marker,
    wf,
)

STEPS = f"{wf('steps')}:StepsWorkflow"


def test_history_shows_one_row_per_event_with_names_attempts_and_results() -> None:
    cli("start", f"{wf('steps')}:FlakyWorkflow", "--arg", "fail_times=1", "--run-id", "h")
    _, screen = through_a_pty(["history", "h"], columns=200)  # the table: on a terminal
    table = screen.decode()
    assert "flaky · run h" in table
    for expected in (
        "WorkflowStarted",
        "ActivityScheduled",
        "flaky#1",
        "ActivityFailed",
        "ConnectionError: attempt 1 failed",
        "retry in 10 ms",
        "ActivityCompleted",
        '"ok after 2"',
        "WorkflowCompleted",
    ):
        assert expected in table


def test_history_json_prints_the_events_exactly_as_stored(home: Path) -> None:
    cli("start", STEPS, "--arg", "count=2", "--run-id", "h")
    out = cli("history", "h", "--json").stdout
    assert out.encode() == (home / "runs" / "h.jsonl").read_bytes()


def test_history_of_a_torn_file_shows_the_intact_events_and_says_so() -> None:
    cli("start", STEPS, "--arg", "count=2", "--run-id", "h")
    cut_history("h", keep=3, tail=b'{"id":4,"ts')
    result = cli("history", "h", "--json")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3
    assert "torn" in result.stderr


@pytest.mark.slow
def test_history_follow_prints_events_while_the_run_is_live(log: Path) -> None:
    process = spawn_wfrun("start", STEPS, "--arg", "count=3", "--run-id", "live", env=hold("step2"))
    try:
        wait_for_marker(process, log, "step2")  # live, and held in step 2 until released
        follower = spawn_wfrun("history", "live", "--follow", "--json")
        assert follower.stdout is not None
        first = follower.stdout.readline()  # printed while the run could not have ended
        release(log, "step2")
        rest = follower.stdout.read()  # to its end: the follower stops when the run does
        follower.wait(timeout=30)
    finally:
        release(log, "step2")
        process.wait(timeout=30)
    kinds = [orjson.loads(line)["type"] for line in (first + rest).splitlines()]
    assert kinds[0] == "WorkflowStarted"
    assert kinds[-1] == "WorkflowCompleted"
    assert kinds.count("ActivityCompleted") == 3


def test_history_follow_of_a_stopped_run_prints_what_there_is_and_returns() -> None:
    cli("start", STEPS, "--arg", "count=2", "--run-id", "h")
    cut_history("h", keep=4)
    result = cli("history", "h", "--follow")
    assert result.exit_code == 0
    assert "ActivityCompleted" in result.stdout
    assert "no live process" in result.stderr


def test_list_json_gives_every_run_with_its_status_and_times() -> None:
    cli("start", STEPS, "--arg", "count=1", "--run-id", "ok")
    cli("start", f"{wf('steps')}:ExhaustedWorkflow", "--run-id", "bad")
    cli("start", STEPS, "--arg", "count=2", "--run-id", "cut")
    cut_history("cut", keep=3)
    rows = orjson.loads(cli("list", "--json").stdout)
    assert {r["run_id"]: r["status"] for r in rows} == {
        "ok": "COMPLETED",
        "bad": "FAILED",
        "cut": "INTERRUPTED",
    }
    assert all({"workflow", "started", "ended"} <= r.keys() for r in rows)
    assert [r["ended"] is None for r in rows if r["run_id"] == "cut"] == [True]


def test_list_filters_by_status() -> None:
    cli("start", STEPS, "--arg", "count=1", "--run-id", "ok")
    cli("start", f"{wf('steps')}:ExhaustedWorkflow", "--run-id", "bad")
    rows = orjson.loads(cli("list", "--status", "failed", "--json").stdout)
    assert [r["run_id"] for r in rows] == ["bad"]


def test_list_refuses_an_unknown_status() -> None:
    result = cli("list", "--status", "sleeping")
    assert result.exit_code == 2
    assert "is not a status" in result.stderr


def test_list_shows_a_damaged_run_instead_of_hiding_it(home: Path) -> None:
    cli("start", STEPS, "--arg", "count=1", "--run-id", "ok")
    (home / "runs" / "junk.jsonl").write_text("not json\n")
    result = cli("list")
    assert "DAMAGED" in result.stdout
    assert "junk.jsonl:1" in result.stderr


def test_list_of_an_empty_home_says_so() -> None:
    result = cli("list")
    assert result.exit_code == 0
    assert "no runs" in result.stderr


def test_show_json_summarizes_a_run() -> None:
    cli("start", f"{wf('steps')}:FlakyWorkflow", "--arg", "fail_times=1", "--run-id", "s")
    summary = orjson.loads(cli("show", "s", "--json").stdout)
    assert summary["status"] == "COMPLETED"
    assert summary["workflow"] == "flaky"
    assert summary["input"] == {"fail_times": 1}
    assert summary["result"] == "ok after 2"
    assert (summary["activities"], summary["attempts"], summary["resumes"]) == (1, 2, 0)


def test_show_of_a_failed_run_gives_the_error_and_traceback() -> None:
    cli("start", f"{wf('steps')}:ExhaustedWorkflow", "--run-id", "s")
    result = cli("show", "s")
    assert "ActivityError" in result.stdout
    assert "Traceback" in result.stdout


def test_the_live_view_shows_each_activity_its_attempt_and_state() -> None:
    cli("start", f"{wf('steps')}:FlakyWorkflow", "--arg", "fail_times=1", "--run-id", "v")
    view = RunView()
    lines = (Path(os.environ["WFRUN_HOME"]) / "runs" / "v.jsonl").read_bytes().splitlines()
    events = [parse_line(Path("v"), 0, line, checksummed=True) for line in lines]
    for event in events[:4]:  # up to the failed first attempt
        view.apply(event)
    console = Console(record=True, width=120)
    console.print(view.renderable(datetime.now(UTC) + timedelta(seconds=1)))
    mid = console.export_text()
    assert "flaky#1" in mid
    assert "↻" in mid
    assert "retry after ConnectionError" in mid
    for event in events[4:]:
        view.apply(event)
    console.print(view.renderable(datetime.now(UTC)))
    final = console.export_text()
    assert "✓ flaky#1" in final
    assert "COMPLETED" in final


@pytest.mark.slow
def test_on_a_terminal_start_shows_the_live_view(isolated: Path) -> None:
    code, output = through_a_pty(["start", STEPS, "--arg", "count=2", "--arg", "delay=0.3"])
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))  # no colours
    assert code == 0
    assert "steps run steps-" in text  # the header: workflow and run id
    assert "step#1" in text
    assert "step#2" in text
    assert "attempt 1" in text
    assert "completed" in text
