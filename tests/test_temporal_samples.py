"""Every sample in samples/ gives the same result on Temporal as locally (SPEC section 5).

Each sample is started with the same arguments on both backends: locally (a history file under
the test's home), and with ``--temporal`` against wfrun's own worker serving the samples on a
real dev server. A sample that waits for a signal or a person's input gets it through ``wfrun
signal``, on each backend. The results must be equal, and so must the status and exit code.

Two workers serve them, on two task queues: ``idempotent_payment`` and ``order_saga`` both
define an activity named ``charge``, and a task queue knows one activity per name.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from wfrun.cli.help import EXAMPLES

from conftest import ROOT, cli, spawn_wfrun, wait_until

pytestmark = pytest.mark.slow

SAMPLES = ROOT / "samples"
#: What the samples read from the environment, the same for the worker and the local runs.
SAMPLE_ENV = {"DOWNLOAD_CHUNKS": "8", "DOWNLOAD_DELAY": "0", "USER_REPORT_DELAY": "0"}


@dataclass(frozen=True)
class Sample:
    """How to run one sample, and what of its result is the same on both backends."""

    target: str
    args: tuple[str, ...] = ()
    #: A signal (name, JSON) the run waits for; sent once the run waits.
    signal: tuple[str, str] | None = None
    #: Result fields that legitimately differ between two runs (timings).
    varying: tuple[str, ...] = ()
    #: `wfrun worker`'s default task queue: the examples of ``--help`` need no --task-queue.
    queue: str = "wfrun"
    env: dict[str, str] = field(default_factory=dict)


SAMPLE_RUNS = {
    "approval": Sample(
        "approval.py:ExpenseApproval", ("--arg", "amount=420"), ("approve", '{"approver": "ada"}')
    ),
    "blocking_calls": Sample(
        "blocking_calls.py:BlockingCallsWorkflow", ("--arg", "calls=4"), None, ("threaded_seconds",)
    ),
    "flaky_api": Sample("flaky_api.py:FlakyApiWorkflow", ("--arg", "order_id=A-17")),
    "hung_call": Sample("hung_call.py:HungCallWorkflow", ("--arg", "url=https://slow.example")),
    "idempotent_payment": Sample(
        "idempotent_payment.py:PaymentWorkflow", ("--arg", "order_id=A-17", "--arg", "cents=4200")
    ),
    "inbox_poller": Sample(
        "inbox_poller.py:InboxPoller",
        ("--arg", "rounds=5", "--arg", "per_run=2", "--arg", "pause=0"),
    ),
    "large_report": Sample("large_report.py:LargeReportWorkflow", ("--arg", "rows=100000")),
    "long_download": Sample(
        "long_download.py:DownloadWorkflow", ("--arg", "url=https://example.com/big.iso")
    ),
    "order_saga": Sample(
        "order_saga.py:OrderSaga", ("--arg", "order=A8"), ("shipped_out", "{}"), queue="saga"
    ),
    "photo_batch": Sample(
        "photo_batch.py:PhotoBatch", ("--input", '{"photos": ["cat.jpg", "dog.jpg"]}')
    ),
    "shipping_form": Sample(
        "shipping_form.py:ShipGift",
        ("--arg", "gift=teapot"),
        ("address", '{"name": "Ada", "city": "London", "express": true}'),
    ),
    "user_report": Sample("user_report.py:UserReportWorkflow", ("--arg", "user_id=42")),
}


def test_every_sample_is_run_on_both_backends_here() -> None:
    samples = {p.stem for p in SAMPLES.glob("*.py") if not p.name.startswith("test_")}
    assert samples == set(SAMPLE_RUNS)


@pytest.fixture(scope="module")
def workers(temporal_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``wfrun worker`` processes serving the samples on the dev server (each queue its
    samples), run from a folder of their own (the samples write files where they run)."""
    processes = []
    try:
        for queue in sorted({sample.queue for sample in SAMPLE_RUNS.values()}):
            targets = [
                str(SAMPLES / sample.target)
                for sample in SAMPLE_RUNS.values()
                if sample.queue == queue
            ]
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "wfrun", "worker", *targets,
                    "--temporal", temporal_server, "--task-queue", queue, "--drain", "0",
                ],
                cwd=tmp_path_factory.mktemp(f"worker-{queue}"),
                env={**os.environ, **SAMPLE_ENV},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            processes.append(process)
        for process in processes:  # started side by side: each takes a second or two
            said = announced(process)
            assert "wfrun: worker serving" in said, said
        yield temporal_server
    finally:
        for process in processes:
            process.terminate()
            process.communicate(timeout=30)


def announced(process: subprocess.Popen[str]) -> str:
    """What the worker said on stderr up to its line saying what it serves (or its end)."""
    assert process.stderr is not None
    said = ""
    while "worker serving" not in said:
        line = process.stderr.readline()
        if not line:
            break
        said += line
    return said


def outcome(line: str, code: int, sample: Sample) -> tuple[int, str, Any, Any]:
    """What must be the same on both backends: exit code, status, result (what varies
    between any two runs left out), and the type of the error a failed run ended with."""
    report = orjson.loads(line)
    result = report["result"]
    if isinstance(result, dict):
        result = {k: v for k, v in result.items() if k not in sample.varying}
    error = report.get("error") or {}
    return code, report["status"], result, error.get("type")


def run_locally(
    name: str, sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, Any, Any]:
    for variable, value in SAMPLE_ENV.items():
        monkeypatch.setenv(variable, value)
    args = ["start", str(SAMPLES / sample.target), *sample.args, "--run-id", name, "--json"]
    started = cli(*args)
    if sample.signal is None:
        return outcome(started.stdout, started.exit_code, sample)
    assert started.exit_code == 75, started.output  # waiting for the signal
    sent = cli("signal", name, *sample.signal, "--json")
    return outcome(sent.stdout.splitlines()[0], sent.exit_code, sample)


def run_on_temporal(name: str, sample: Sample, cluster: str) -> tuple[int, str, Any, Any]:
    on = ("--temporal", cluster)
    args = ["start", str(SAMPLES / sample.target), *sample.args, "--run-id", name, "--json"]
    if sample.signal is None:
        started = cli(*args, "--task-queue", sample.queue, *on)
        return outcome(started.stdout, started.exit_code, sample)
    process = spawn_wfrun(*args, "--task-queue", sample.queue, *on)
    wait_until(process, lambda: cli("show", name, *on).exit_code == 0, f"run {name}")
    sent = cli("signal", name, *sample.signal, *on)
    assert sent.exit_code == 0, sent.output
    out, err = process.communicate(timeout=60)
    assert out, err
    return outcome(out, process.returncode, sample)


@pytest.mark.parametrize("name", sorted(SAMPLE_RUNS))
def test_the_sample_gives_the_same_result_on_temporal_as_locally(
    name: str, workers: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sample = SAMPLE_RUNS[name]
    local = run_locally(name, sample, monkeypatch)
    on_temporal = run_on_temporal(name, sample, workers)
    assert on_temporal == local


def test_a_samples_run_on_temporal_replays_against_its_code(workers: str) -> None:
    target = str(SAMPLES / "user_report.py:UserReportWorkflow")
    on = ("--temporal", workers)
    args = ("--arg", "user_id=42", "--task-queue", "wfrun")
    started = cli("start", target, *args, "--run-id", "replayed", *on)
    assert started.exit_code == 0, started.stderr
    replayed = cli("replay", "replayed", "--target", target, *on)
    assert replayed.exit_code == 0, replayed.stderr
    assert "run replayed replays: today's code agrees with its" in replayed.stderr


def test_a_samples_run_on_temporal_does_not_replay_against_changed_code(
    workers: str, tmp_path: Path
) -> None:
    target = str(SAMPLES / "user_report.py:UserReportWorkflow")
    on = ("--temporal", workers)
    args = ("--arg", "user_id=42", "--task-queue", "wfrun")
    assert cli("start", target, *args, "--run-id", "changed", *on).exit_code == 0
    source = (SAMPLES / "user_report.py").read_text()
    changed = tmp_path / "user_report.py"  # one more activity call before the others
    changed.write_text(
        source.replace(
            "        user = await",
            "        await fetch_user_data(user_id)\n        user = await",
            1,
        )
    )
    assert changed.read_text() != source
    replayed = cli("replay", "changed", "--target", f"{changed}:UserReportWorkflow", *on)
    assert replayed.exit_code == 3
    assert "run changed does not replay against 'user_report' as it is today" in replayed.stderr
    assert "Nondeterminism" in replayed.stderr


def test_the_temporal_examples_of_help_run_one_after_another(
    workers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start (served by the workers), then history, show and replay of that run."""
    monkeypatch.chdir(ROOT)  # where samples/ is, as the examples say
    for command in ("start", "history", "show", "replay"):
        [line] = [line for line in EXAMPLES[command].splitlines() if "--temporal" in line]
        words = shlex.split(line.split("   (")[0].replace("127.0.0.1:7233", workers))
        result = cli(*words[1:])
        assert result.exit_code == 0, (line, result.output)


def history_on(cluster: str, run_id: str) -> list[dict[str, Any]]:
    result = cli("history", run_id, "--json", "--temporal", cluster)
    assert result.exit_code == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_a_parents_history_on_temporal_shows_its_children(workers: str) -> None:
    target = str(SAMPLES / "photo_batch.py:PhotoBatch")
    args = ("--input", '{"photos": ["cat.jpg", "dog.jpg"]}', "--run-id", "batch-history")
    assert cli("start", target, *args, "--temporal", workers).exit_code == 0
    events = history_on(workers, "batch-history")
    started = [e for e in events if e["type"] == "ChildWorkflowStarted"]
    completed = [e for e in events if e["type"] == "ChildWorkflowCompleted"]
    assert [e["workflow"] for e in started] == ["photo", "photo"]
    assert sorted(e["seq"] for e in completed) == sorted(e["seq"] for e in started)
    assert {e["run_id"] for e in completed} == {e["run_id"] for e in started}
    summary = orjson.loads(cli("show", "batch-history", "--json", "--temporal", workers).stdout)
    assert len(summary["children"]) == 2


def test_an_activity_past_its_timeout_on_temporal_shows_as_timed_out(workers: str) -> None:
    target = str(SAMPLES / "hung_call.py:HungCallWorkflow")
    args = ("--arg", "url=https://slow.example", "--run-id", "hung-history")
    assert cli("start", target, *args, "--temporal", workers).exit_code == 1
    [timed_out] = [
        e for e in history_on(workers, "hung-history") if e["type"] == "ActivityTimedOut"
    ]
    assert (timed_out["timeout"], timed_out["limit"], timed_out["attempt"]) == (
        "start_to_close",
        1.0,
        2,  # Temporal retried the first attempt on the server, and records the last
    )


def test_a_run_that_continued_as_new_on_temporal_shows_its_last_run(workers: str) -> None:
    target = str(SAMPLES / "inbox_poller.py:InboxPoller")
    args = ("--arg", "rounds=3", "--arg", "per_run=1", "--arg", "pause=0", "--run-id", "chain")
    assert cli("start", target, *args, "--temporal", workers).exit_code == 0
    summary = orjson.loads(cli("show", "chain", "--json", "--temporal", workers).stdout)
    assert (summary["status"], summary["result"]) == ("COMPLETED", 3)
    assert summary["continues"] is not None  # the run before it, in the same chain
    assert summary["input"]["cursor"] == 2


def test_a_signal_naming_no_input_the_run_waits_for_is_refused_with_target(workers: str) -> None:
    target = str(SAMPLES / "shipping_form.py:ShipGift")
    on = ("--temporal", workers)
    process = spawn_wfrun("start", target, "--arg", "gift=kettle", "--run-id", "misnamed", *on)
    wait_until(process, lambda: cli("show", "misnamed", *on).exit_code == 0, "the run")
    try:
        sent = cli("signal", "misnamed", "adress", '{"name": "Ada"}', "--target", target, *on)
        assert sent.exit_code == 2
        assert "has no signal 'adress'" in sent.stderr
        assert "waits for input 'address'" in sent.stderr
    finally:
        process.kill()
        process.wait()
