"""Every sample in samples/ runs, and does what its docstring says."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import Result

from wfrun.local.store import RunStore

from conftest import (
    ROOT,
    cli,
    history,
    kill_after,
    last_heartbeat,
    run_wfrun,
    spawn_wfrun,
)

SAMPLES = ROOT / "samples"


@pytest.fixture(autouse=True)
def every_run_replays() -> Iterator[None]:
    """Whatever runs a sample's test leaves behind replay against today's code: recorded and
    replayed, each sample makes the same decisions."""
    yield
    for run in orjson.loads(cli("list", "--json").stdout):
        replayed = cli("replay", run["run_id"])
        assert replayed.exit_code == 0, (run["run_id"], replayed.output)


def start_sample(target: str, *, run_id: str | None = None, **arguments: object) -> Result:
    """``wfrun start samples/<target> --arg NAME=VALUE...`` in-process."""
    args = ["start", str(SAMPLES / target)]
    for name, value in arguments.items():
        args += ["--arg", f"{name}={value}"]
    return cli(*args, *(["--run-id", run_id] if run_id else []))


def recorded(run_id: str, kind: str) -> list:
    return [e for e in RunStore().read(run_id).events if e.type == kind]


def test_user_report_builds_the_report() -> None:
    result = start_sample("user_report.py:UserReportWorkflow", user_id=42)
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == {
        "user": "Ada Lovelace",
        "plan": "pro",
        "total_logins": 16,
    }


def test_user_report_of_an_unknown_user_fails_without_retrying() -> None:
    result = start_sample("user_report.py:UserReportWorkflow", user_id=7, run_id="u")
    assert result.exit_code == 1
    assert "user 7 does not exist" in result.stderr
    assert len(recorded("u", "ActivityStarted")) == 1


def test_flaky_api_succeeds_on_the_third_attempt() -> None:
    result = start_sample("flaky_api.py:FlakyApiWorkflow", order_id="A-17", run_id="f")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == {"order_id": "A-17", "status": "confirmed", "attempts": 3}
    assert [f.retry_in for f in recorded("f", "ActivityFailed")] == [0.2, 0.4]


def test_hung_call_times_out_twice_then_fails() -> None:
    result = start_sample(
        "hung_call.py:HungCallWorkflow", url="https://slow.example.com", run_id="h"
    )
    assert result.exit_code == 1
    assert "start_to_close" in result.stderr
    assert [t.attempt for t in recorded("h", "ActivityTimedOut")] == [1, 2]


def test_long_download_downloads_chunk_by_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOWNLOAD_CHUNKS", "8")
    monkeypatch.setenv("DOWNLOAD_DELAY", "0")
    result = start_sample("long_download.py:DownloadWorkflow", url="https://example.com/big.iso")
    assert result.exit_code == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert (report["bytes"], report["resumed_at_chunk"]) == (8 * 64 * 1024, 0)
    assert Path("downloads/big.iso").stat().st_size == 8 * 64 * 1024


@pytest.mark.slow
def test_long_download_resumes_from_its_last_heartbeat_after_kill_9(home: Path) -> None:
    target = str(SAMPLES / "long_download.py:DownloadWorkflow")
    chunks = {"DOWNLOAD_CHUNKS": "100"}
    process = spawn_wfrun(
        "start",
        target,
        "--arg",
        "url=https://example.com/a.iso",
        "--run-id",
        "dl",
        env={**chunks, "DOWNLOAD_DELAY": "0.2"},  # 20 s in all: it is killed long before
    )
    # The body writes each chunk to disk, then heartbeats: three chunks on disk mean the first
    # two heartbeats were given, and the first is recorded at once.
    written = Path("downloads/a.iso")
    kill_after(
        process,
        lambda: written.exists() and written.stat().st_size >= 3 * 64 * 1024,
        "three chunks on disk",
    )
    offset = last_heartbeat(history(home, "dl"))  # read after the kill: the truth then
    assert offset >= 1
    resumed = run_wfrun("resume", "dl", "--json", env={**chunks, "DOWNLOAD_DELAY": "0"})
    assert resumed.returncode == 0, resumed.stderr
    report = orjson.loads(resumed.stdout)["result"]
    assert report["resumed_at_chunk"] == offset
    whole = run_wfrun(
        "start",
        target,
        "--arg",
        "url=https://example.com/a.iso",
        "--quiet",
        env={**chunks, "DOWNLOAD_DELAY": "0"},
    )
    assert orjson.loads(whole.stdout)["sha256"] == report["sha256"]  # the same bytes in the end


def test_idempotent_payment_charges_once_although_it_ran_twice() -> None:
    result = start_sample("idempotent_payment.py:PaymentWorkflow", order_id="A-17", cents=4200)
    assert result.exit_code == 0, result.stderr
    receipt = orjson.loads(result.stdout)
    assert receipt["attempts"] == 2
    ledger = orjson.loads(Path("bank-ledger.json").read_bytes())
    assert len(ledger) == 1
    assert next(iter(ledger.values()))["charge"] == receipt["charge"]


def test_large_report_passes_a_reference_and_shows_the_limit() -> None:
    result = start_sample("large_report.py:LargeReportWorkflow", rows=100_000, run_id="big")
    assert result.exit_code == 0, result.stderr
    outcome = orjson.loads(result.stdout)
    assert outcome["report"]["rows"] == 100_000
    assert sum(outcome["totals"].values()) == sum(i % 997 for i in range(100_000))
    assert "the output of activity 'build_report_inline' is" in outcome["inline"]
    assert RunStore().path("big").stat().st_size < 64 * 1024


def test_blocking_calls_overlap_in_threads_and_the_careless_one_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Inside its blocking call, each legacy_lookup waits for the other three to be inside
    # theirs: all four get through only if they block at the same time, in threads of their own.
    inside = threading.Barrier(4)
    met: list[bool] = []
    blocking_call = time.sleep

    def sleep(seconds: float) -> None:
        if sys._getframe(1).f_code.co_name == "legacy_lookup":
            try:
                inside.wait(timeout=10)  # a bound, so that calls made in turn fail, not hang
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
        blocking_call(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    result = start_sample("blocking_calls.py:BlockingCallsWorkflow", calls=4)
    assert result.exit_code == 0, result.stderr
    assert met == [True] * 4
    assert "activity 'careless_lookup'" in result.stderr
    assert "blocked the event loop" in result.stderr


def test_every_sample_has_a_test_here() -> None:
    """A ``test_*.py`` in samples/ is itself a sample of a user's tests, run by this suite."""
    source = Path(__file__).read_text()
    samples = [p for p in SAMPLES.glob("*.py") if not p.name.startswith("test_")]
    untested = [p.name for p in samples if f'"{p.name}:' not in source]
    assert untested == []


def test_the_sample_tests_in_samples_are_collected_by_this_suite() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "samples" in config["tool"]["pytest"]["ini_options"]["testpaths"]
    assert list(SAMPLES.glob("test_*.py"))


def test_approval_waits_for_the_signal_and_pays() -> None:
    waiting = start_sample("approval.py:ExpenseApproval", run_id="exp", amount=420)
    assert waiting.exit_code == 75, waiting.output
    assert orjson.loads(cli("query", "exp", "status").stdout) == "waiting"
    paid = cli("signal", "exp", "approve", '{"approver": "ada"}')
    assert paid.exit_code == 0, paid.output
    assert orjson.loads(paid.stdout) == "paid 420 EUR, approved by ada"


def test_approval_is_rejected_when_nobody_answers_in_three_days() -> None:
    from conftest import backdate

    assert start_sample("approval.py:ExpenseApproval", run_id="late", amount=5).exit_code == 75
    backdate("late", 3 * 24 * 3600)
    result = cli("resume", "--all", "--json")
    [line] = orjson.loads(result.stdout)
    assert line["result"] == "rejected: nobody approved 5 EUR within three days"


def test_order_saga_cancelled_compensates_newest_first() -> None:
    waiting = start_sample("order_saga.py:OrderSaga", run_id="A7", order="A7")
    assert waiting.exit_code == 75, waiting.output
    cancelled = cli("cancel", "A7", "--reason", "customer changed their mind")
    assert cancelled.exit_code == 1, cancelled.output
    assert [e.name for e in recorded("A7", "ActivityScheduled")] == [
        "reserve_stock",
        "charge",
        "refund",
        "release_stock",
    ]
    assert recorded("A7", "WorkflowCanceled")


def test_order_saga_shipped_finishes_the_order() -> None:
    assert start_sample("order_saga.py:OrderSaga", run_id="A8", order="A8").exit_code == 75
    shipped = cli("signal", "A8", "shipped_out")
    assert orjson.loads(shipped.stdout) == ["stock reserved for A8", "A8 charged", "A8 shipped"]


def test_shipping_form_takes_its_form_as_a_signal_without_a_terminal() -> None:
    waiting = start_sample("shipping_form.py:ShipGift", run_id="gift-1", gift="teapot")
    assert waiting.exit_code == 75, waiting.output
    sent = cli("signal", "gift-1", "address", '{"name": "Ada", "city": "London", "express": true}')
    assert sent.exit_code == 0, sent.output
    assert orjson.loads(sent.stdout) == "teapot sent to Ada in London (express)"
    assert cli("replay", "gift-1").exit_code == 0


def test_photo_batch_runs_one_child_per_photo() -> None:
    args = ["start", str(SAMPLES / "photo_batch.py:PhotoBatch"), "--run-id", "batch"]
    result = cli(*args, "--input", '{"photos": ["cat.jpg", "dog.jpg"]}')
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == [
        "cat.jpg: cat-320.jpg, cat-640.jpg, cat-1280.jpg",
        "dog.jpg: dog-320.jpg, dog-640.jpg, dog-1280.jpg",
    ]
    listed = orjson.loads(cli("list", "--json").stdout)
    assert sorted(run["run_id"] for run in listed if run.get("parent") == "batch") == [
        "batch-child-1",
        "batch-child-2",
    ]
    assert cli("replay", "batch").exit_code == 0


def test_inbox_poller_continues_as_new_and_returns_the_final_count() -> None:
    result = start_sample(
        "inbox_poller.py:InboxPoller", run_id="poll", rounds=5, per_run=2, pause=0
    )
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == 5
    statuses = [run["status"] for run in orjson.loads(cli("list", "--json").stdout)]
    assert statuses == ["CONTINUED_AS_NEW", "CONTINUED_AS_NEW", "COMPLETED"]
    assert cli("replay", "poll").exit_code == 0


def test_inbox_poller_waits_between_rounds_with_no_process() -> None:
    from conftest import backdate

    waiting = start_sample("inbox_poller.py:InboxPoller", run_id="hourly", rounds=2)
    assert waiting.exit_code == 75, waiting.output
    backdate("hourly", 3600)
    [line] = orjson.loads(cli("resume", "--all", "--json").stdout)
    assert line["result"] == 2
