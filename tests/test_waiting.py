"""Waiting is a state, not a crash: a run that cannot move for a while records it and stops."""

from __future__ import annotations

from pathlib import Path

import orjson

from conftest import backdate, cli, wf

NAP = f"{wf('timers')}:NapWorkflow"
FOREVER = f"{wf('timers')}:ForeverWorkflow"


def events(home: Path, run_id: str) -> list[dict]:
    return [orjson.loads(x) for x in (home / "runs" / f"{run_id}.jsonl").read_bytes().splitlines()]


def test_a_timer_further_than_max_wait_stops_the_run_waiting_with_exit_75(home: Path) -> None:
    result = cli("start", NAP, "--arg", "seconds=3600", "--run-id", "nap", "--json")
    assert result.exit_code == 75, result.output
    line = orjson.loads(result.stdout)
    assert line["status"] == "WAITING"
    [timer] = [e for e in events(home, "nap") if e["type"] == "TimerStarted"]
    assert line["until"] == timer["due"]
    assert events(home, "nap")[-1]["type"] == "RunWaiting"


def test_list_and_show_say_waiting_and_when_it_is_due(home: Path) -> None:
    cli("start", NAP, "--arg", "seconds=3600", "--run-id", "nap")
    [listed] = orjson.loads(cli("list", "--json").stdout)
    assert listed["status"] == "WAITING"
    due = listed["due"]
    shown = orjson.loads(cli("show", "nap", "--json").stdout)
    assert (shown["status"], shown["due"]) == ("WAITING", due)
    assert "timer" in shown["waiting"]
    assert f"WAITING\t{listed['started']}\t\t{due}" in cli("list").stdout


def test_a_timer_within_max_wait_is_waited_for_in_the_process() -> None:
    result = cli("start", NAP, "--arg", "seconds=0.2", "--max-wait", "5")
    assert result.exit_code == 0, result.output


def test_max_wait_zero_stops_at_any_timer(home: Path) -> None:
    assert cli("start", NAP, "--arg", "seconds=0.2", "--max-wait", "0").exit_code == 75


def test_resume_all_leaves_a_waiting_run_alone_until_it_is_due(home: Path) -> None:
    cli("start", NAP, "--arg", "seconds=3600", "--run-id", "nap")
    idle = cli("resume", "--all", "--json")
    assert idle.exit_code == 0, idle.output
    assert orjson.loads(idle.stdout) == []
    backdate("nap", 3600)  # an hour has passed
    due = cli("resume", "--all", "--json")
    assert due.exit_code == 0, due.output
    [resumed] = orjson.loads(due.stdout)
    assert (resumed["run_id"], resumed["status"]) == ("nap", "COMPLETED")


def test_a_run_that_only_a_message_can_move_is_waiting_not_interrupted(home: Path) -> None:
    result = cli("start", FOREVER, "--run-id", "forever", "--json")
    assert result.exit_code == 75, result.output
    assert "until" not in orjson.loads(result.stdout)
    [listed] = orjson.loads(cli("list", "--json").stdout)
    assert listed["status"] == "WAITING"
    assert "due" not in listed
    again = cli("resume", "--all", "--json")  # cron must not resume it forever
    assert again.exit_code == 0
    assert orjson.loads(again.stdout) == []


def test_resume_of_a_waiting_run_goes_on_and_records_it(home: Path) -> None:
    cli("start", NAP, "--arg", "seconds=3600", "--run-id", "nap")
    backdate("nap", 3600)
    assert cli("resume", "nap").exit_code == 0
    kinds = [e["type"] for e in events(home, "nap")]
    assert kinds[kinds.index("RunWaiting") + 1 :][:2] == ["RunResumed", "TimerFired"]
