"""Every sample in samples/ runs, and does what its docstring says."""

from __future__ import annotations

from pathlib import Path

import orjson

from wfrun.history import RunStore

from conftest import ROOT, cli

SAMPLES = ROOT / "samples"


def test_user_report_builds_the_report() -> None:
    result = cli("start", f"{SAMPLES / 'user_report.py'}:UserReportWorkflow", "--arg", "user_id=42")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == {
        "user": "Ada Lovelace",
        "plan": "pro",
        "total_logins": 16,
    }


def test_user_report_of_an_unknown_user_fails_without_retrying() -> None:
    result = cli(
        "start",
        f"{SAMPLES / 'user_report.py'}:UserReportWorkflow",
        "--arg",
        "user_id=7",
        "--run-id",
        "u",
    )
    assert result.exit_code == 1
    assert "user 7 does not exist" in result.stderr
    started = [e for e in RunStore().read("u").events if e.type == "ActivityStarted"]
    assert len(started) == 1


def test_flaky_api_succeeds_on_the_third_attempt() -> None:
    result = cli(
        "start",
        f"{SAMPLES / 'flaky_api.py'}:FlakyApiWorkflow",
        "--arg",
        "order_id=A-17",
        "--run-id",
        "f",
    )
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == {"order_id": "A-17", "status": "confirmed", "attempts": 3}
    failures = [e for e in RunStore().read("f").events if e.type == "ActivityFailed"]
    assert [f.retry_in for f in failures] == [0.2, 0.4]


def test_hung_call_times_out_twice_then_fails() -> None:
    result = cli(
        "start",
        f"{SAMPLES / 'hung_call.py'}:HungCallWorkflow",
        "--arg",
        "url=https://slow.example.com",
        "--run-id",
        "h",
    )
    assert result.exit_code == 1
    assert "start_to_close" in result.stderr
    timeouts = [e for e in RunStore().read("h").events if e.type == "ActivityTimedOut"]
    assert [t.attempt for t in timeouts] == [1, 2]


def test_every_sample_has_a_test_here() -> None:
    source = Path(__file__).read_text()
    untested = [p.name for p in SAMPLES.glob("*.py") if f"'{p.name}'" not in source]
    assert untested == []
