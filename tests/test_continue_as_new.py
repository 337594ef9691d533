"""Continue-as-new: a run hands over to a fresh run of its workflow; callers follow the chain."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

import wfrun as workflows

from conftest import attempts, cli, history, run_wfrun, signed, wf

COUNTER = f"{wf('family')}:Counter"
FIVE_IN_TWOS = '{"start": 0, "until": 5, "per_run": 2}'


def chain(home: Path, first: str) -> list[str]:
    """The run ids of a chain, from its first run, following each run's last event."""
    runs = [first]
    while (last := history(home, runs[-1])[-1])["type"] == "WorkflowContinuedAsNew":
        runs.append(last["run_id"])
    return runs


def test_start_follows_the_chain_to_its_final_result(home: Path, log: Path) -> None:
    result = cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c", "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["result"] == 5
    runs = chain(home, "c")
    assert len(runs) == 3
    assert report["run_id"] == runs[-1]
    assert report["chain"] == runs[:-1]
    assert attempts(log, "pack") == 5


def test_each_run_of_a_chain_names_the_next_and_the_one_before(home: Path) -> None:
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    first, second, _ = chain(home, "c")
    assert history(home, first)[-1]["input"] == {"start": 2, "until": 5, "per_run": 2}
    assert history(home, second)[0]["continued_from"] == first
    shown = orjson.loads(cli("show", first, "--json").stdout)
    assert (shown["status"], shown["continued_as"]) == ("CONTINUED_AS_NEW", second)
    assert orjson.loads(cli("show", second, "--json").stdout)["continues"] == first


def test_a_new_run_starts_with_a_fresh_history(home: Path) -> None:
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    for run_id in chain(home, "c")[:-1]:
        scheduled = [e for e in history(home, run_id) if e["type"] == "ActivityScheduled"]
        assert len(scheduled) == 2


def test_resume_of_an_earlier_run_follows_the_chain(home: Path) -> None:
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    resumed = cli("resume", "c", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert orjson.loads(resumed.stdout)["result"] == 5


def test_a_crash_before_the_next_run_existed_is_carried_on_by_resume(home: Path, log: Path) -> None:
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    first, second, third = chain(home, "c")
    # What a kill between recording the hand-over and creating the next run leaves.
    (home / "runs" / f"{second}.jsonl").unlink()
    (home / "runs" / f"{third}.jsonl").unlink()
    resumed = cli("resume", first, "--json")
    assert orjson.loads(resumed.stdout)["result"] == 5
    assert chain(home, first)[1] == second  # the recorded id, not a new one
    assert attempts(log, "pack") == 5 + 3


def test_execute_workflow_follows_the_chain(home: Path) -> None:
    from flows.family import Counter

    params = {"start": 0, "until": 3, "per_run": 1}
    assert asyncio.run(workflows.execute_workflow(Counter, params, execution_id="c")) == 3
    assert len(chain(home, "c")) == 4


def test_should_continue_as_new_turns_true_past_the_configured_size(
    home: Path, monkeypatch
) -> None:
    monkeypatch.setenv("WFRUN_CONTINUE_AS_NEW_AT", "8")
    result = cli("start", f"{wf('family')}:Poller", "--arg", "polled=0", "--arg", "until=6")
    assert orjson.loads(result.stdout) == 6
    runs = [run["run_id"] for run in orjson.loads(cli("list", "--json").stdout)]
    assert len(runs) > 1
    assert all(len(history(home, run_id)) <= 8 + 4 for run_id in runs)
    assert history(home, runs[0])[0]["continue_as_new_at"] == 8


def test_a_bad_continue_as_new_size_is_a_usage_error(monkeypatch) -> None:
    monkeypatch.setenv("WFRUN_CONTINUE_AS_NEW_AT", "many")
    result = cli("start", COUNTER, "--input", FIVE_IN_TWOS)
    assert result.exit_code == 2
    assert "WFRUN_CONTINUE_AS_NEW_AT" in result.stderr


def test_a_continued_run_replays(home: Path) -> None:
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    replayed = cli("replay", "c")
    assert replayed.exit_code == 0, replayed.output


def test_resume_all_leaves_continued_runs_alone(home: Path) -> None:
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    resumed = run_wfrun("resume", "--all", "--json")
    assert orjson.loads(resumed.stdout) == []


def test_resume_all_creates_the_next_run_a_crash_did_not(home: Path, log: Path) -> None:
    # What a kill -9 leaves between WorkflowContinuedAsNew and the next run's creation: the
    # first run ended, its successor does not exist. Cron's `resume --all` must carry it on.
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    for run_id in chain(home, "c")[1:]:
        (home / "runs" / f"{run_id}.jsonl").unlink()
    resumed = run_wfrun("resume", "--all", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert [report["result"] for report in orjson.loads(resumed.stdout)] == [5]
    assert len(chain(home, "c")) == 3


def test_a_chain_that_names_a_run_it_did_not_start_is_refused(home: Path) -> None:
    # A history is untrusted input: a WorkflowContinuedAsNew edited to name another run (here
    # the first run of the chain itself, a loop) must not be followed into that run.
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    first, second, _ = chain(home, "c")
    path = home / "runs" / f"{second}.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    last = orjson.loads(lines[-1])
    lines[-1] = signed({**last, "run_id": first})
    path.write_bytes(b"".join(lines))
    resumed = run_wfrun("resume", "c", timeout=30)
    assert resumed.returncode == 6, resumed.stderr
    assert f"{first} did not continue from {second}" in resumed.stderr


def test_a_message_to_an_earlier_run_of_a_chain_names_its_successor(home: Path) -> None:
    cli("start", COUNTER, "--input", FIVE_IN_TWOS, "--run-id", "c")
    refused = cli("signal", "c", "anything")
    assert refused.exit_code == 2
    assert f"continued as new as run {chain(home, 'c')[1]}" in refused.stderr
