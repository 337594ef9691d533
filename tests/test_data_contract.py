"""The data contract: typed payloads, the size limit, threads, blocking, heartbeats, identity."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import orjson
import pytest

import wfrun as workflows
from wfrun.local.store import RunStore

from conftest import (
    attempts,
    cli,
    cut_history,
    history,
    hold,
    kill_after_marker,
    last_heartbeat,
    run_wfrun,
    spawn_wfrun,
    wf,
)
from flows.contract import (
    BadValuesWorkflow,
    DownloadWorkflow,
    HeartbeatsWorkflow,
    SizesWorkflow,
    ThreadsWorkflow,
    TypesWorkflow,
)

MiB = 1024 * 1024
ALL_SAME = {
    "echo": dict.fromkeys(
        [
            "when",
            "day",
            "clock",
            "ident",
            "color",
            "amount",
            "blob",
            "pair",
            "tags",
            "point",
            "response",
            "numbers",
            "nothing",
        ],
        True,
    ),
    "each": [True] * 12,
    "is_everything": True,
    "response": ["ApiResponse", 201],
    "tz": 7200.0,
}


def run(workflow: type, params: object = None, run_id: str | None = None) -> object:
    return asyncio.run(workflows.execute_workflow(workflow, params, execution_id=run_id))


def events(run_id: str, kind: str) -> list:
    return [e for e in RunStore().read(run_id).events if e.type == kind]


# -- types -----------------------------------------------------------------------------------


def test_every_supported_type_comes_back_from_an_activity_with_its_type(log: Path) -> None:
    assert run(TypesWorkflow) == ALL_SAME


def test_every_supported_type_keeps_its_type_when_replayed_from_the_history(log: Path) -> None:
    run(TypesWorkflow, run_id="t")
    cut_history("t", keep=10)  # three activities recorded; the run died before the fourth
    assert asyncio.run(workflows.resume_workflow("t")) == ALL_SAME
    assert attempts(log, "echo") == 1


@pytest.mark.slow
def test_pydantic_results_keep_their_class_after_a_kill_9_and_resume(home: Path, log: Path) -> None:
    process = spawn_wfrun(
        "start", f"{wf('contract')}:TypesWorkflow", "--run-id", "k", env=hold("step99")
    )
    kill_after_marker(process, log, "step99")  # three typed results recorded, the fourth running
    resumed = run_wfrun("resume", "k", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == ALL_SAME
    assert attempts(log, "echo") == 1


def test_inputs_are_recorded_as_plain_json(log: Path) -> None:
    run(TypesWorkflow, run_id="t")
    [echo] = [e for e in events("t", "ActivityScheduled") if e.name == "echo"]
    values = echo.input["values"]
    assert values["blob"] == "AP9yYXcgYnl0ZXM="  # base64
    assert values["tags"] == ["a", "b", "c"]  # sets sorted: the same bytes in every process
    assert values["amount"] == "10.50"
    assert values["when"] == "2026-03-01T09:30:15.123456+02:00"
    assert values["numbers"] == {"1": 1.5, "2": 2.5}


# -- the size limit --------------------------------------------------------------------------


def test_an_input_over_2_mib_fails_the_call_before_the_activity_runs(log: Path) -> None:
    result = run(SizesWorkflow, {"direction": "in", "size": 3 * MiB})
    assert result["side"] == "input"
    assert result["activity"] == "store_blob"
    assert result["size"] > 3 * MiB
    assert result["limit"] == 2 * MiB
    assert "the input of activity 'store_blob' is 3.0 MiB" in result["error"]
    assert attempts(log, "store_blob") == 0


def test_an_input_under_the_limit_passes(log: Path) -> None:
    assert run(SizesWorkflow, {"direction": "in", "size": 1 * MiB}) == {"ok": MiB}


def test_an_output_over_2_mib_fails_at_once_and_is_never_recorded(log: Path) -> None:
    result = run(SizesWorkflow, {"direction": "out", "size": 3 * MiB}, run_id="big")
    assert result["side"] == "output"
    assert "the output of activity 'make_blob' is 3.0 MiB" in result["error"]
    assert attempts(log, "make_blob") == 1  # no retry: it would be just as big
    assert RunStore().path("big").stat().st_size < 64 * 1024


def test_the_limit_can_be_raised_for_a_run_on_the_command_line(log: Path) -> None:
    args = (
        "start",
        f"{wf('contract')}:SizesWorkflow",
        "--arg",
        "direction=in",
        "--arg",
        f"size={3 * MiB}",
    )
    assert "error" in orjson.loads(cli(*args).stdout)
    assert orjson.loads(cli(*args, "--max-payload", "4MiB").stdout) == {"ok": 3 * MiB}


def test_the_limit_can_be_set_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFRUN_MAX_PAYLOAD", "512KiB")
    assert run(SizesWorkflow, {"direction": "in", "size": MiB})["limit"] == 512 * 1024


def test_an_activity_can_have_its_own_limit(log: Path) -> None:
    assert run(SizesWorkflow, {"direction": "small", "size": 500}) == {"ok": 500}
    result = run(SizesWorkflow, {"direction": "small", "size": 2000})
    assert result["limit"] == 1024
    assert attempts(log, "small_only") == 1


# -- values that cannot travel -----------------------------------------------------------------


def test_an_unencodable_argument_names_the_activity_the_argument_and_the_type(log: Path) -> None:
    message = run(BadValuesWorkflow, {"which": "argument"})
    assert message == (
        "EncodingError: argument 'value' of activity 'takes_anything' cannot be encoded as "
        "JSON: Opaque is not supported. Use JSON builtins, datetime, UUID, Enum, Decimal, bytes, "
        "dataclasses or pydantic models."
    )
    assert attempts(log, "takes_anything") == 0


def test_an_unencodable_result_fails_the_activity_without_retry(log: Path) -> None:
    message = run(BadValuesWorkflow, {"which": "result"})
    assert "the result of activity 'returns_opaque' cannot be encoded as JSON" in message
    assert attempts(log, "returns_opaque") == 1


def test_a_result_that_does_not_match_its_annotation_names_the_field(log: Path) -> None:
    message = run(BadValuesWorkflow, {"which": "annotation"})
    assert "does not match its return annotation ApiResponse" in message
    assert "result.status: Input should be a valid integer" in message
    assert "result.received: Field required" in message
    assert attempts(log, "promises_a_response") == 1


def test_activity_arguments_are_coerced_to_their_annotations(log: Path) -> None:
    from flows.steps import step

    assert asyncio.run(step("7")) == 70  # type: ignore[arg-type]


# -- threads and blocking ----------------------------------------------------------------------


def test_plain_def_activities_run_in_threads_and_do_not_block_each_other(log: Path) -> None:
    # Each body blocks its thread until it sees the other one start: both get through only
    # if they run at the same time.
    assert run(ThreadsWorkflow, {"which": "meet", "seconds": 0}) == [True, True]


def test_a_timed_out_thread_is_abandoned_and_the_error_says_so() -> None:
    with pytest.raises(workflows.WorkflowFailedError, match="Python cannot stop"):
        run(ThreadsWorkflow, {"which": "timeout", "seconds": 0})


def test_an_async_activity_that_blocks_the_loop_is_reported_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    run(ThreadsWorkflow, {"which": "naughty", "seconds": 0.6})
    whole_run = time.monotonic() - started
    err = capsys.readouterr().err
    assert "activity 'naughty_sleep'" in err
    assert "contract.py:" in err  # the line that blocked
    blocked = float(err.split("blocked the event loop for about ")[1].split("s")[0])
    assert 0.5 <= blocked <= whole_run  # the 0.6 s sleep, and no more than there was
    assert "make it a plain `def` activity" in err


def test_a_blocking_plain_def_activity_is_not_reported(capsys: pytest.CaptureFixture[str]) -> None:
    run(ThreadsWorkflow, {"which": "plain", "seconds": 0.6})
    assert "blocked the event loop" not in capsys.readouterr().err


def test_the_blocking_threshold_is_configurable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFRUN_BLOCKING_THRESHOLD", "60")  # far above a 0.6 s block, however slow
    run(ThreadsWorkflow, {"which": "naughty", "seconds": 0.6})
    assert "blocked the event loop" not in capsys.readouterr().err


# -- heartbeats --------------------------------------------------------------------------------


def journal(log: Path, name: str) -> list[str]:
    path = log / f"{name}.log"
    return path.read_text().splitlines() if path.exists() else []


def test_the_next_attempt_reads_the_last_heartbeat_details(log: Path) -> None:
    assert run(DownloadWorkflow, {"chunks": 6, "delay": 0.01, "fail_at": 3}) == 6
    assert journal(log, "download") == ["attempt 1 from 0", "attempt 2 from 3"]


@pytest.mark.slow
def test_heartbeat_details_reach_the_next_attempt_after_a_kill_9(home: Path, log: Path) -> None:
    process = spawn_wfrun(
        "start",
        f"{wf('contract')}:DownloadWorkflow",
        "--arg",
        "chunks=12",
        "--arg",
        "delay=0",
        "--run-id",
        "dl",
        env=hold("chunk4"),
    )
    kill_after_marker(process, log, "chunk4")  # four heartbeats given, the body held after them
    recorded = last_heartbeat(history(home, "dl"))  # read after the kill: the truth then
    assert recorded >= 1  # the first heartbeat is recorded at once; later ones at intervals
    resumed = run_wfrun("resume", "dl", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert journal(log, "download") == ["attempt 1 from 0", f"attempt 1 from {recorded}"]


def test_an_attempt_silent_past_its_heartbeat_timeout_times_out() -> None:
    with pytest.raises(workflows.WorkflowFailedError):
        run(HeartbeatsWorkflow, {"which": "quiet"}, run_id="q")
    [timeout] = events("q", "ActivityTimedOut")
    assert timeout.timeout == "heartbeat"
    assert timeout.limit == 0.3


def test_a_tight_heartbeat_loop_does_not_flood_the_history() -> None:
    started = time.monotonic()
    assert run(HeartbeatsWorkflow, {"which": "chatter"}, run_id="c") == 10_000
    seconds = time.monotonic() - started
    beats = events("c", "ActivityHeartbeat")
    # 10,000 heartbeats; recorded: the first, at most one a second after it, and the latest.
    assert 1 <= len(beats) <= 2 + seconds
    assert beats[-1].details == [9999]  # the latest details are never lost


def test_a_plain_def_activity_can_heartbeat_from_its_thread() -> None:
    assert run(HeartbeatsWorkflow, {"which": "thread"}, run_id="t") == 500
    assert events("t", "ActivityHeartbeat")[-1].details == [499]


def test_unencodable_heartbeat_details_fail_the_attempt_where_they_are_given() -> None:
    with pytest.raises(workflows.WorkflowFailedError) as failed:
        run(HeartbeatsWorkflow, {"which": "opaque"}, run_id="o")
    assert "the heartbeat details of activity 'beats_opaque' cannot be encoded" in str(failed.value)
    assert events("o", "ActivityHeartbeat") == []


def test_heartbeat_details_come_back_as_json_values(log: Path) -> None:
    assert run(HeartbeatsWorkflow, {"which": "typed"}) == [["2026-01-01", "1.5"], True]


# -- activity info and idempotency -------------------------------------------------------------


@pytest.mark.slow
def test_the_idempotency_key_is_the_same_across_attempts_and_resumes(home: Path, log: Path) -> None:
    process = spawn_wfrun(
        "start", f"{wf('contract')}:PaymentWorkflow", "--run-id", "pay", env=hold("charging")
    )
    kill_after_marker(process, log, "charging")  # attempt 2 of the first charge is running
    resumed = run_wfrun("resume", "pay", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    rows = [line.split() for line in journal(log, "keys")]
    first = [r for r in rows if r[0] == "1"]
    second = [r for r in rows if r[0] == "2"]
    assert [r[1] for r in first] == ["1", "2", "2"]  # attempt 2 ran again after the kill
    assert len({r[2] for r in first}) == 1
    assert {r[2] for r in second} != {r[2] for r in first}
    assert {(r[3], r[4], r[5]) for r in rows} == {("pay", "charge_card", "payment")}


def test_another_run_gets_other_keys(log: Path) -> None:
    from flows.contract import PaymentWorkflow

    run(PaymentWorkflow, run_id="one")
    run(PaymentWorkflow, run_id="two")
    keys = {line.split()[3]: line.split()[2] for line in journal(log, "keys")}
    assert keys["one"] != keys["two"]


# -- the workflow's own input and result -------------------------------------------------------


def test_a_workflow_gets_its_arguments_and_gives_its_result_with_their_types() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from flows.contract import Receipt, TypedWorkflow

    receipt = run(TypedWorkflow, {"order": "A", "at": "2026-01-01T10:00:00Z", "total": "9.90"})
    assert isinstance(receipt, Receipt)
    assert receipt.at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert receipt.total == Decimal("9.90")


def test_a_workflow_result_over_the_limit_blocks_the_run_without_recording_it() -> None:
    """Returning too much is a bug in the code: the run is BLOCKED until the code is fixed."""
    from flows.contract import TypedWorkflow

    with pytest.raises(workflows.WfrunError, match=r"BLOCKED.*output of workflow 'typed_workflow'"):
        run(
            TypedWorkflow,
            {"order": "A", "at": "2026-01-01T10:00:00Z", "total": "1", "huge": 3 * MiB},
            run_id="huge",
        )
    assert RunStore().path("huge").stat().st_size < 64 * 1024


def test_cli_arguments_are_decoded_to_the_entrypoint_s_types() -> None:
    result = cli(
        "start",
        f"{wf('contract')}:TypedWorkflow",
        "--arg",
        "order=A",
        "--arg",
        "at=2026-01-01T10:00:00+02:00",
        "--arg",
        "total=9.90",
    )
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == {
        "order": "A",
        "at": "2026-01-01T10:00:00+02:00",
        "total": "9.90",
    }


def frames_called(
    wanted: Callable[[FrameType], bool], *calls: Callable[[], object]
) -> list[FrameType]:
    """The frames of the calls made while ``calls`` run that ``wanted`` picks, still alive."""
    frames: list[FrameType] = []

    def catch(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and wanted(frame):
            frames.append(frame)

    sys.setprofile(catch)
    try:
        for call in calls:
            call()
    finally:
        sys.setprofile(None)
    return frames


def in_settings_home(frame: FrameType) -> bool:
    from wfrun import settings

    return frame.f_code is settings.home.__code__


def test_the_loop_blocked_in_wfrun_s_own_code_is_not_blamed_on_the_user() -> None:
    from wfrun import settings
    from wfrun.local.watchdog import suspect

    frames = frames_called(in_settings_home, settings.home)
    assert suspect(frames[0]) is None
    here = sys._getframe()
    assert suspect(here) == f"code at {os.path.relpath(__file__)}:{here.f_lineno}"


def test_the_standard_library_is_looked_through_to_whose_code_called_it() -> None:
    from wfrun import settings
    from wfrun.local.watchdog import suspect

    stdlib = (os.path.dirname(os.__file__), "<frozen ")
    frames = frames_called(
        lambda frame: frame.f_code.co_filename.startswith(stdlib),
        settings.home,  # wfrun's own code, calling the standard library (os.environ.get)
        lambda: os.environ.get("HOME"),  # this test's code, calling it
    )
    by_wfrun = [f for f in frames if f.f_back and f.f_back.f_code is settings.home.__code__]
    by_test = [f for f in frames if f.f_back and f.f_back.f_code.co_filename == __file__]
    assert suspect(by_wfrun[0]) is None
    assert suspect(by_test[0]) is not None


def test_wfrun_installed_next_to_the_standard_library_is_still_its_own_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A system-wide install (``/usr/local/lib/python3.11/site-packages/wfrun``) lies under the
    standard library's folder: wfrun's frames must not be looked through as the library's."""
    import wfrun
    from wfrun import settings
    from wfrun.local import watchdog

    installed = os.path.dirname(os.path.abspath(wfrun.__file__)) + os.sep
    frames = frames_called(in_settings_home, settings.home)
    monkeypatch.setattr(watchdog, "_STDLIB_FILES", (installed, "<frozen "))
    assert watchdog.suspect(frames[0]) is None


def test_a_workflow_result_that_misses_its_annotation_says_which_and_how_to_fix_it() -> None:
    result = cli("start", f"{wf('contract')}:WrongResultWorkflow", "--run-id", "w")
    assert result.exit_code == 3, result.output  # a bug in the code: BLOCKED, resumable once fixed
    assert "does not match its return annotation int" in result.stderr
    assert "return a value that fits int, or annotate what it returns (-> str)" in result.stderr
