"""Output for people and for scripts (SPEC section 2): plain rows on a pipe, tables that fit 80
columns on a terminal, the run id on stderr for a cron log, and user code's print() kept out
of stdout (and not repeated on replay)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from conftest import cli, cut_history, run_wfrun, through_a_pty, wf, write_module

STEPS = f"{wf('steps')}:StepsWorkflow"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")

CHATTY = """
    import wfrun as workflows

    @workflows.activity
    async def shout(word: str) -> str:
        print("async activity says", word)
        return word.upper()

    @workflows.activity
    def whisper(word: str) -> str:
        print("thread activity says", word)
        return word.lower()

    @workflows.workflow.define(name="chatty")
    class Chatty:
        @workflows.workflow.entrypoint
        async def run(self, word: str) -> str:
            print("workflow before", word)
            loud = await shout(word)
            print("workflow between", loud)
            return await whisper(loud) + "!" + "x" * 300
"""


def _screen_lines(screen: bytes) -> list[str]:
    return ANSI.sub(b"", screen).decode().replace("\r", "").splitlines()


def test_history_on_a_pipe_prints_a_header_and_one_tab_separated_row_per_event(
    home: Path,
) -> None:
    cli("start", STEPS, "--arg", "count=2", "--run-id", "h")
    lines = cli("history", "h").stdout.splitlines()
    stored = (home / "runs" / "h.jsonl").read_bytes().splitlines()
    assert lines[0].split("\t") == ["id", "ts", "type", "step", "attempt", "duration_s", "detail"]
    assert len(lines) == 1 + len(stored)
    first = orjson.loads(stored[0])
    assert lines[1].split("\t")[:3] == ["1", first["ts"], "WorkflowStarted"]
    assert all(len(line.split("\t")) == 7 for line in lines)


def test_list_on_a_pipe_prints_a_header_and_one_tab_separated_row_per_run() -> None:
    cli("start", STEPS, "--arg", "count=1", "--run-id", "a")
    cli("start", STEPS, "--arg", "count=1", "--run-id", "b")
    lines = cli("list").stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["run_id", "workflow", "status"]
    assert [line.split("\t")[:3] for line in lines[1:]] == [
        ["a", "steps", "COMPLETED"],
        ["b", "steps", "COMPLETED"],
    ]


def test_history_rows_stay_on_one_line_at_80_columns(isolated: Path, home: Path) -> None:
    write_module(isolated / "chatty.py", CHATTY)
    cli("start", "chatty.py:Chatty", "--arg", "word=hi", "--run-id", "c")
    code, screen = through_a_pty(["history", "c"], columns=80)
    assert code == 0
    lines = _screen_lines(screen)
    rows = [line for line in lines if re.match(r"\s*\d+\s+\d\d:\d\d:\d\d", line)]
    events = (home / "runs" / "c.jsonl").read_bytes().splitlines()
    assert len(rows) == len(events)  # every event, each on a line of its own
    assert all(len(line) <= 80 for line in lines), lines


def test_a_long_payload_is_shortened_with_a_marker_on_a_terminal(isolated: Path) -> None:
    write_module(isolated / "chatty.py", CHATTY)
    cli("start", "chatty.py:Chatty", "--arg", "word=hi", "--run-id", "c")
    _, screen = through_a_pty(["history", "c"], columns=80)
    [completed] = [line for line in _screen_lines(screen) if "WorkflowCompleted" in line]
    assert completed.rstrip().endswith("…")


def test_list_rows_stay_on_one_line_at_80_columns() -> None:
    run_id = "a-rather-long-run-id-as-a-script-or-a-cron-job-might-choose-it"
    cli("start", STEPS, "--arg", "count=1", "--run-id", run_id)
    code, screen = through_a_pty(["list"], columns=80)
    assert code == 0
    lines = _screen_lines(screen)
    assert any(run_id in line and "COMPLETED" in line for line in lines), lines
    assert all(len(line) <= 80 for line in lines), lines


def test_show_event_prints_that_whole_event_as_pretty_json(home: Path, isolated: Path) -> None:
    write_module(isolated / "chatty.py", CHATTY)
    cli("start", "chatty.py:Chatty", "--arg", "word=hi", "--run-id", "c")
    result = cli("show", "c", "--event", "8")
    assert result.exit_code == 0
    event = orjson.loads(result.stdout)
    assert event["type"] == "WorkflowCompleted"
    assert event["result"] == "hi!" + "x" * 300  # nothing shortened
    assert result.stdout.startswith("{\n  ")


def test_show_event_that_does_not_exist_is_bad_usage() -> None:
    cli("start", STEPS, "--arg", "count=1", "--run-id", "s")
    result = cli("show", "s", "--event", "99")
    assert result.exit_code == 2
    assert "no event 99" in result.stderr


def test_start_tells_the_run_id_on_stderr_when_stdout_is_not_a_terminal() -> None:
    result = run_wfrun("start", STEPS, "--arg", "count=1", "--quiet")
    [run] = orjson.loads(run_wfrun("list", "--json").stdout)
    assert f"wfrun: run {run['run_id']}\n" in result.stderr


def test_print_in_workflow_and_activity_code_goes_to_stderr_not_stdout(isolated: Path) -> None:
    write_module(isolated / "chatty.py", CHATTY)
    result = run_wfrun("start", "chatty.py:Chatty", "--arg", "word=hi", "--json")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["status"] == "COMPLETED"  # only the JSON
    for said in ("workflow before hi", "async activity says hi", "thread activity says HI"):
        assert said in result.stderr


def test_workflow_code_does_not_print_again_what_it_printed_before_a_resume(
    isolated: Path,
) -> None:
    write_module(isolated / "chatty.py", CHATTY)
    run_wfrun("start", "chatty.py:Chatty", "--arg", "word=hi", "--run-id", "c")
    cut_history("c", keep=5)  # up to shout's ActivityCompleted: whisper has not run
    result = run_wfrun("resume", "c")
    assert result.returncode == 0, result.stderr
    assert "workflow before" not in result.stderr  # replayed: said the first time only
    assert "async activity says" not in result.stderr  # recorded: not run again
    assert "thread activity says HI" in result.stderr


def test_resume_all_json_with_nothing_to_do_prints_an_empty_array() -> None:
    result = cli("resume", "--all", "--json")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == []
