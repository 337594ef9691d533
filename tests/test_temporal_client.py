"""The command line with ``--temporal``: the same output, ``--json`` shapes and exit codes as
local runs, against a real Temporal dev server.

The worker is a stand-in written with temporalio alone (tests/temporal_standin.py), keeping
wfrun's mapping contract: what is tested here is the client side, whatever wfrun's own worker
does (tests/test_temporal_samples.py runs the samples through it). One stand-in serves the
module, on a task queue of its own.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import Result

from conftest import (
    TESTS,
    cli,
    run_wfrun,
    spawn_wfrun,
    through_a_pty,
    wait_for_file,
    wait_until,
    wf,
)

pytestmark = pytest.mark.slow

QUEUE = "client-tests"
FLOWS = wf("temporal_client")


@pytest.fixture(scope="module")
def cluster(temporal_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dev server's address, with the stand-in worker serving `QUEUE` on it."""
    ready = tmp_path_factory.mktemp("standin") / "ready"
    worker = subprocess.Popen(
        [sys.executable, str(TESTS / "temporal_standin.py"), temporal_server, QUEUE, str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_file(ready, worker)
        yield temporal_server
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


def on(cluster: str, *args: str) -> Result:
    """``wfrun ARGS --temporal CLUSTER`` in-process."""
    return cli(*args, "--temporal", cluster)


def start(cluster: str, workflow: str, *args: str) -> Result:
    return on(cluster, "start", f"{FLOWS}:{workflow}", "--task-queue", QUEUE, *args)


def waiting_run(cluster: str, run_id: str, *args: str) -> subprocess.Popen[str]:
    """``wfrun start`` of an approval run in a process of its own, once the run exists."""
    process = spawn_wfrun(
        "start", f"{FLOWS}:approval", "--arg", "amount=420", "--run-id", run_id, "--json",
        "--task-queue", QUEUE, "--temporal", cluster, *args,
    )  # fmt: skip
    wait_until(process, lambda: on(cluster, "show", run_id).exit_code == 0, f"run {run_id}")
    return process


def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` (what another process makes true); fail only on a real hang."""
    for _ in range(600):
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


def open_run(cluster: str, run_id: str) -> None:
    """An approval run waiting for its signal, started by Temporal's own CLI (quicker than a
    Python process, and another client keeping the contract): for the tests of what is sent
    to a run, whoever started it."""
    from temporal_server import temporal_binary

    binary = temporal_binary()
    assert binary is not None
    subprocess.run(
        [
            binary, "workflow", "start", "--type", "approval", "--task-queue", QUEUE,
            "--workflow-id", run_id, "--input", '{"amount": 420}', "--address", cluster,
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def test_start_prints_the_result_and_exits_0(cluster: str) -> None:
    result = start(cluster, "greet", "--arg", "name=Ada")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == "hello, Ada"


def test_start_json_has_the_shape_of_a_local_run(cluster: str) -> None:
    result = start(cluster, "greet", "--arg", "name=Ada", "--run-id", "shape", "--json")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == {
        "run_id": "shape",
        "status": "COMPLETED",
        "result": "hello, Ada",
    }


def test_start_tells_the_run_id_on_stderr(cluster: str) -> None:
    result = start(cluster, "greet", "--arg", "name=Ada", "--run-id", "told")
    assert "wfrun: run told" in result.stderr


def test_start_again_with_the_run_id_of_a_completed_run_prints_its_result(cluster: str) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "again").exit_code == 0
    first = orjson.loads(on(cluster, "show", "again", "--json").stdout)
    again = start(cluster, "greet", "--arg", "name=Ada", "--run-id", "again", "--json")
    assert again.exit_code == 0, again.stderr
    assert orjson.loads(again.stdout)["result"] == "hello, Ada"
    # The same run, not a second one under the same id: nothing ran twice.
    assert orjson.loads(on(cluster, "show", "again", "--json").stdout) == first


def test_start_with_the_run_id_of_a_run_with_another_input_is_refused(cluster: str) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "reused").exit_code == 0
    refused = start(cluster, "greet", "--arg", "name=Bob", "--run-id", "reused")
    assert refused.exit_code == 2
    assert 'exists with input {"name":"Ada"}, not {"name":"Bob"}' in refused.stderr


def test_start_with_the_run_id_of_another_workflow_is_refused(cluster: str) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "other").exit_code == 0
    refused = start(cluster, "refused", "--arg", "reason=no", "--run-id", "other")
    assert refused.exit_code == 2
    assert "exists for workflow 'greet', not 'refused'" in refused.stderr


def test_start_with_the_run_id_of_a_running_run_waits_for_its_end(cluster: str) -> None:
    first = waiting_run(cluster, "twice")
    second = spawn_wfrun(
        "start", f"{FLOWS}:approval", "--arg", "amount=420", "--run-id", "twice", "--json",
        "--task-queue", QUEUE, "--temporal", cluster,
    )  # fmt: skip
    assert on(cluster, "signal", "twice", "approve", '{"approver": "ada"}').exit_code == 0
    for process in (first, second):
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert orjson.loads(out)["result"] == "paid 420 EUR, approved by ada"


def test_a_bug_in_workflow_code_leaves_the_run_blocked_exit_3(cluster: str) -> None:
    result = start(cluster, "broken", "--run-id", "bug", "--json")
    assert result.exit_code == 3, result.stderr
    line = orjson.loads(result.stdout)
    assert (line["status"], line["error"]["type"]) == ("BLOCKED", "KeyError")
    assert orjson.loads(on(cluster, "show", "bug", "--json").stdout)["status"] == "BLOCKED"


def test_a_blocked_run_says_it_stays_open_until_a_fixed_worker_runs(cluster: str) -> None:
    result = start(cluster, "broken", "--run-id", "bug-text")
    assert result.exit_code == 3
    assert "is BLOCKED: its workflow code raised KeyError: 'missing'" in result.stderr
    assert "restart `wfrun worker`" in result.stderr
    assert "wfrun resume" not in result.stderr  # nothing to resume from here


def test_an_application_failure_fails_the_run_exit_1(cluster: str) -> None:
    result = start(cluster, "refused", "--arg", "reason=card declined", "--json")
    assert result.exit_code == 1
    line = orjson.loads(result.stdout)
    assert line["status"] == "FAILED"
    assert line["error"]["type"] == "PaymentDeclined"
    assert line["error"]["message"] == "card declined"


def test_a_run_past_its_execution_timeout_ends_timed_out_exit_1(cluster: str) -> None:
    result = start(cluster, "SlowWithDeadline", "--json")
    assert result.exit_code == 1, result.output
    assert orjson.loads(result.stdout)["status"] == "TIMED_OUT"


def test_bad_input_is_refused_before_anything_starts_exit_2(cluster: str) -> None:
    result = start(cluster, "greet", "--arg", "nmae=Ada", "--run-id", "never")
    assert result.exit_code == 2
    assert on(cluster, "show", "never").exit_code == 4


@pytest.mark.parametrize("command", [["show"], ["history"], ["query", "status"], ["cancel"]])
def test_an_unknown_run_is_exit_4(cluster: str, command: list[str]) -> None:
    result = on(cluster, command[0], "no-such-run", *command[1:])
    assert result.exit_code == 4
    assert "no run no-such-run on Temporal at" in result.stderr


def test_an_unreachable_cluster_is_one_line_and_exit_74() -> None:
    from temporal_server import free_port

    result = run_wfrun("list", "--temporal", f"127.0.0.1:{free_port()}")
    assert result.returncode == 74
    [line] = result.stderr.splitlines()
    assert line.startswith("wfrun: cannot reach the Temporal cluster at 127.0.0.1:")


def test_a_signal_reaches_a_waiting_run_which_ends_with_its_result(cluster: str) -> None:
    process = waiting_run(cluster, "signalled")
    sent = on(cluster, "signal", "signalled", "approve", '{"approver": "ada"}')
    assert sent.exit_code == 0, sent.stderr
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert orjson.loads(out) == {
        "run_id": "signalled",
        "status": "COMPLETED",
        "result": "paid 420 EUR, approved by ada",
    }


def test_a_signal_is_checked_against_the_target_before_it_is_sent(cluster: str) -> None:
    open_run(cluster, "checked")
    code = ("--target", f"{FLOWS}:approval")
    bad = on(cluster, "signal", "checked", "approve", '{"who": "ada"}', *code)
    assert bad.exit_code == 2
    assert "has no parameter 'who'; it takes: approver" in bad.stderr
    assert orjson.loads(on(cluster, "query", "checked", "status").stdout) == "waiting"


def test_a_query_answers_from_the_live_run(cluster: str) -> None:
    open_run(cluster, "asked")
    answer = on(cluster, "query", "asked", "status")
    assert answer.exit_code == 0, answer.stderr
    assert orjson.loads(answer.stdout) == "waiting"


def test_an_unknown_query_is_refused_naming_the_ones_the_target_defines(cluster: str) -> None:
    open_run(cluster, "unknown-query")
    refused = on(cluster, "query", "unknown-query", "stauts", "--target", f"{FLOWS}:approval")
    assert refused.exit_code == 2
    assert "workflow 'approval' has no query 'stauts'; it defines 'status'" in refused.stderr


def test_an_unknown_query_without_target_reaches_the_user_as_the_worker_refused_it(
    cluster: str,
) -> None:
    open_run(cluster, "unknown-query-2")
    refused = on(cluster, "query", "unknown-query-2", "stauts")
    assert refused.exit_code == 2
    assert "query 'stauts' of run unknown-query-2 failed" in refused.stderr
    assert "status" in refused.stderr  # the worker names the queries it knows


def test_an_update_prints_its_handlers_answer(cluster: str) -> None:
    open_run(cluster, "updated")
    answer = on(cluster, "update", "updated", "raise_limit", '{"limit": 250}')
    assert answer.exit_code == 0, answer.stderr
    assert orjson.loads(answer.stdout) == 250


def test_an_update_its_validator_refuses_exits_1_saying_why(cluster: str) -> None:
    open_run(cluster, "refused-update")
    answer = on(cluster, "update", "refused-update", "raise_limit", '{"limit": -1}')
    assert answer.exit_code == 1
    assert "update raise_limit refused: ValueError: a limit is never negative" in answer.stderr


def test_an_update_its_handler_fails_exits_1_saying_it_failed(cluster: str) -> None:
    open_run(cluster, "failed-update")
    answer = on(cluster, "update", "failed-update", "raise_limit", '{"limit": 5000}')
    assert answer.exit_code == 1
    assert "update raise_limit failed: TooHigh: over the approver's authority" in answer.stderr


def test_cancel_ends_a_waiting_run_canceled_with_its_reason(cluster: str) -> None:
    process = spawn_wfrun(
        "start", f"{FLOWS}:slow", "--run-id", "cancelled", "--json",
        "--task-queue", QUEUE, "--temporal", cluster,
    )  # fmt: skip
    wait_until(process, lambda: on(cluster, "show", "cancelled").exit_code == 0, "the run")
    sent = on(cluster, "cancel", "cancelled", "--reason", "no longer needed")
    assert sent.exit_code == 0, sent.stderr
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    line = orjson.loads(out)
    assert line["status"] == "CANCELED"
    assert line["error"]["message"] == "the run was cancelled: no longer needed"


def test_a_message_to_a_run_that_ended_is_refused_naming_how_it_ended(cluster: str) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "ended").exit_code == 0
    refused = on(cluster, "signal", "ended", "approve", "{}")
    assert refused.exit_code == 2
    assert "run ended has ended (COMPLETED)" in refused.stderr


def test_history_shows_temporal_events_as_wfrun_rows(cluster: str) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "rows").exit_code == 0
    result = on(cluster, "history", "rows")
    assert result.exit_code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["id", "ts", "type", "step", "attempt", "duration_s", "detail"]
    types = [row[2] for row in rows[1:]]
    assert types[0] == "WorkflowStarted"
    assert types[-1] == "WorkflowCompleted"
    assert {"ActivityScheduled", "ActivityStarted", "ActivityCompleted"} <= set(types)
    # Temporal's own events have no wfrun counterpart: shown under their names, not skipped.
    assert "WorkflowTaskCompleted" in types
    [completed] = [row for row in rows if row[2] == "ActivityCompleted"]
    assert completed[3].startswith("hello#")
    assert completed[6] == '"hello, Ada"'


def test_history_json_is_wfrun_events_as_json_lines(cluster: str) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "lines").exit_code == 0
    result = on(cluster, "history", "lines", "--json")
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "WorkflowStarted"
    assert (events[0]["run_id"], events[0]["workflow"]) == ("lines", "greet")
    assert events[0]["input"] == {"name": "Ada"}
    [scheduled] = [e for e in events if e["type"] == "ActivityScheduled"]
    assert (scheduled["name"], scheduled["input"]) == ("hello", {"name": "Ada"})
    assert events[-1] == {**events[-1], "type": "WorkflowCompleted", "result": "hello, Ada"}


def test_show_json_summarizes_the_run_as_locally(cluster: str) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "shown").exit_code == 0
    summary = orjson.loads(on(cluster, "show", "shown", "--json").stdout)
    assert summary["run_id"] == "shown"
    assert summary["workflow"] == "greet"
    assert summary["status"] == "COMPLETED"
    assert summary["target"].endswith("temporal_client.py:greet")
    assert (summary["input"], summary["result"]) == ({"name": "Ada"}, "hello, Ada")
    assert summary["activities"] == 1


def test_list_shows_the_clusters_runs_filtered_by_status(cluster: str) -> None:
    assert start(cluster, "refused", "--arg", "reason=no", "--run-id", "listed").exit_code == 1

    def listed() -> list[dict]:
        return orjson.loads(on(cluster, "list", "--status", "failed", "--json").stdout)

    # The cluster's visibility store may lag its histories by a moment.
    eventually(lambda: any(run["run_id"] == "listed" for run in listed()), "the listed run")
    [run] = [run for run in listed() if run["run_id"] == "listed"]
    assert (run["workflow"], run["status"]) == ("refused", "FAILED")
    assert {r["status"] for r in listed()} == {"FAILED"}


def test_max_wait_is_accepted_and_said_to_mean_nothing_there(cluster: str) -> None:
    result = start(cluster, "greet", "--arg", "name=Ada", "--max-wait", "5")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("--max-wait has no meaning on Temporal") == 1


def test_replay_on_temporal_needs_the_code_to_replay_against(cluster: str) -> None:
    result = on(cluster, "replay", "anything")
    assert result.exit_code == 2
    assert "replay --temporal needs --target TARGET" in result.stderr


@pytest.mark.parametrize("flag", ["--namespace", "--target"])
def test_a_temporal_option_without_temporal_is_a_usage_error(flag: str) -> None:
    result = cli("query", "some-run", "status", flag, "x")
    assert result.exit_code == 2
    assert f"{flag} goes with --temporal" in result.stderr


def test_the_address_may_come_from_wfrun_temporal(
    cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "by-env").exit_code == 0
    monkeypatch.setenv("WFRUN_TEMPORAL", cluster)
    result = cli("show", "by-env", "--json")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["status"] == "COMPLETED"


def test_a_temporal_command_ends_its_process_cleanly(cluster: str, tmp_path: Path) -> None:
    # The SDK's threads may abort an interpreter's shutdown (sdk-python issue 300): the
    # command leaves with os._exit after flushing, with its own exit code.
    result = run_wfrun(
        "start", f"{FLOWS}:greet", "--arg", "name=Ada", "--json",
        "--task-queue", QUEUE, "--temporal", cluster,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["result"] == "hello, Ada"


def waiting_for_a_worker(cluster: str, run_id: str) -> tuple[subprocess.Popen[str], str]:
    """``wfrun start`` on a task queue nobody serves, and what it said once it said so."""
    process = spawn_wfrun(
        "start", f"{FLOWS}:greet", "--arg", "name=Ada", "--run-id", run_id,
        "--task-queue", f"nobody-{run_id}", "--temporal", cluster,
    )  # fmt: skip
    assert process.stderr is not None
    said = ""
    while "no worker has polled" not in said:
        line = process.stderr.readline()
        assert line, said
        said += line
    return process, said


def test_start_says_so_when_no_worker_serves_the_task_queue(cluster: str) -> None:
    process, said = waiting_for_a_worker(cluster, "unserved")
    process.kill()
    process.wait()
    assert "no worker has polled task queue 'nobody-unserved'" in said
    assert "--task-queue nobody-unserved" in said  # how to start one


def test_ctrl_c_stops_waiting_and_says_the_run_goes_on_on_the_cluster(cluster: str) -> None:
    process, _ = waiting_for_a_worker(cluster, "left")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "run left goes on on the cluster" in err
    assert "wfrun resume" not in err
    assert on(cluster, "show", "left").exit_code == 0  # there it is, still open


def test_a_namespace_the_cluster_does_not_have_is_a_usage_error(cluster: str) -> None:
    result = on(cluster, "show", "any-run", "--namespace", "no-such-namespace")
    assert result.exit_code == 2
    assert "Namespace no-such-namespace is not found" in result.stderr


def test_history_follow_prints_events_as_the_cluster_records_them_to_the_end(
    cluster: str,
) -> None:
    process = waiting_run(cluster, "followed")
    follower = spawn_wfrun("history", "followed", "--follow", "--temporal", cluster)
    assert follower.stdout is not None
    assert follower.stdout.readline().startswith("id\tts\ttype")  # it reads the run
    assert on(cluster, "signal", "followed", "approve", '{"approver": "ada"}').exit_code == 0
    # Read on through the same buffered file: communicate() reads the pipe itself and would
    # lose the rows that readline() had already buffered.
    out = follower.stdout.read()
    _, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    assert [row[2] for row in rows].count("WorkflowStarted") == 1  # each event once
    assert rows[-1][2] == "WorkflowCompleted"
    assert "SignalReceived" in [row[2] for row in rows]
    process.communicate(timeout=60)


def test_names_and_payloads_from_the_cluster_are_printed_as_text(cluster: str) -> None:
    # Whoever can start runs on the cluster writes these: no escape sequence from there may
    # reach a terminal as such, nor rich markup act.
    from temporal_server import temporal_binary

    binary = temporal_binary()
    assert binary is not None
    hostile = "evil\x1b[2J[bold]"
    subprocess.run(
        [
            binary, "workflow", "start", "--type", hostile, "--task-queue", "nobody-hostile",
            "--workflow-id", "hostile", "--input", '{"note": "\\u001b]0;owned\\u0007"}',
            "--address", cluster,
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    for command in (["history", "hostile"], ["show", "hostile"], ["list"]):
        result = on(cluster, *command)
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout
        assert "\x07" not in result.stdout
        if command[0] != "list":
            assert "evil\\x1b[2J[bold]" in result.stdout  # shown, escaped, markup as written


def test_start_on_a_terminal_shows_the_runs_steps_live(cluster: str) -> None:
    code, output = through_a_pty(
        ["start", f"{FLOWS}:greet", "--arg", "name=Ada", "--run-id", "on-a-terminal",
         "--task-queue", QUEUE, "--temporal", cluster],
    )  # fmt: skip
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode())  # the styles
    assert code == 0, shown
    assert "greet run on-a-terminal" in shown  # the live view's header
    assert "hello#" in shown  # its activity, from the converted events
    assert "run on-a-terminal completed" in shown


def test_history_on_a_terminal_is_the_local_table(cluster: str) -> None:
    assert start(cluster, "greet", "--arg", "name=Ada", "--run-id", "table").exit_code == 0
    code, output = through_a_pty(["history", "table", "--temporal", cluster], columns=80)
    lines = output.decode().splitlines()
    assert code == 0
    assert lines[0].startswith("greet · run table · ")
    assert all(len(line.rstrip()) <= 80 for line in lines if "\x1b" not in line)
    assert any("ActivityCompleted" in line and "hello#" in line for line in lines)
