"""The worker side of the Temporal backend, against a real dev server: wfrun code run by
Temporal behaves as it does locally (SPEC section 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the Temporal extra is not installed")

from temporalio.client import (
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)

from wfrun.definitions import require_workflow_definition
from wfrun.loader import load

from conftest import ROOT, attempts
from flows import cluster
from temporal_worker import InProcessWorker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def worker(temporal_server: str) -> Iterator[InProcessWorker]:
    definitions = [
        require_workflow_definition(value)
        for value in vars(cluster).values()
        if isinstance(value, type) and hasattr(value, "__wfrun_workflow__")
    ]
    definitions.append(load(f"{ROOT / 'samples' / 'user_report.py'}:UserReportWorkflow"))
    running = InProcessWorker(temporal_server, definitions)
    yield running
    running.stop()


def test_the_seed_example_returns_its_report(worker: InProcessWorker) -> None:
    result = worker.execute("user_report", {"user_id": "42"})
    assert result == {"user": "Ada Lovelace", "plan": "pro", "total_logins": 16}


def test_a_retried_activity_returns_after_its_failed_attempts(
    worker: InProcessWorker, log: Path
) -> None:
    result = worker.execute("t_failures", {"which": "flaky", "fail_times": 2})
    assert result == {"result": "ok after 3"}
    assert attempts(log, "flaky_call") == 3


def test_exhausted_attempts_give_activity_error_with_the_original_type_and_message(
    worker: InProcessWorker, log: Path
) -> None:
    result = worker.execute("t_failures", {"which": "flaky", "fail_times": 10})
    assert attempts(log, "flaky_call") == 4
    assert result == {
        "error": "ActivityError",
        "attempts": 4,
        "retry_state": "MAXIMUM_ATTEMPTS_REACHED",
        "cause_class": "ConnectionError",
        "cause_type": "ConnectionError",
        "cause_message": "attempt 4 failed",
        "message": "activity 'flaky_call' failed after 4 attempts: "
        "ConnectionError: attempt 4 failed",
    }


def test_an_error_flagged_non_retryable_fails_the_call_at_once(
    worker: InProcessWorker, log: Path
) -> None:
    result = worker.execute("t_failures", {"which": "flag"})
    assert attempts(log, "declines") == 1
    assert result["retry_state"] == "NON_RETRYABLE_FAILURE"
    assert (result["cause_type"], result["cause_message"]) == ("ApplicationError", "card declined")


def test_a_base_class_listed_as_non_retryable_stops_its_subclass_at_once(
    worker: InProcessWorker, log: Path
) -> None:
    result = worker.execute("t_failures", {"which": "listed"})
    assert attempts(log, "looks_up") == 1
    assert result["cause_type"] == "LookupFailed"
    assert result["retry_state"] == "NON_RETRYABLE_FAILURE"


def test_a_result_over_the_payload_limit_is_payload_too_large_in_the_workflow(
    worker: InProcessWorker, log: Path
) -> None:
    result = worker.execute("t_failures", {"which": "too_big"})
    assert result == {"too_large": "output", "activity": "too_big", "limit": 100}
    assert attempts(log, "too_big") == 1


def test_an_activity_failure_the_workflow_does_not_catch_fails_the_run(
    worker: InProcessWorker,
) -> None:
    with pytest.raises(WorkflowFailureError) as caught:
        worker.execute("t_fails", {"how": "activity"})
    cause = caught.value.cause
    assert getattr(cause, "type", None) == "ActivityError"
    assert "card declined" in str(cause)


def test_an_application_error_raised_by_the_workflow_fails_the_run(
    worker: InProcessWorker,
) -> None:
    with pytest.raises(WorkflowFailureError) as caught:
        worker.execute("t_fails", {"how": "application"})
    assert getattr(caught.value.cause, "type", None) == "ApplicationError"
    assert getattr(caught.value.cause, "message", None) == "refused on purpose"


def test_a_bug_in_the_workflow_leaves_the_run_open_as_local_blocks_it(
    worker: InProcessWorker,
) -> None:
    from temporalio.client import WorkflowExecutionStatus

    handle = worker.start("t_fails", {"how": "bug"})

    assert "a bug" in worker.first_task_failure(handle)
    described = worker.run(handle.describe)
    assert described.status == WorkflowExecutionStatus.RUNNING
    worker.run(lambda: handle.terminate("test over"))


def test_workflow_code_gets_temporals_time_randomness_ids_and_patches(
    worker: InProcessWorker,
) -> None:
    handle = worker.start("t_runtime")
    result = worker.result(handle)
    assert result["run_id"] == result["execution_id"] == handle.id
    assert result["workflow_name"] == "t_runtime"
    assert result["slept"] >= 0.2
    assert result["aware"] is True
    assert 0 <= result["random"] < 1
    assert result["uuid_version"] == 4
    assert result["patched"] is True
    assert result["timed_out"] == "condition not met within 0.1s"


def test_an_activity_sees_its_run_id_name_and_attempt(worker: InProcessWorker) -> None:
    handle = worker.start("t_runtime")
    activity = worker.result(handle)["activity"]
    assert activity["run_id"] == handle.id
    assert activity["name"] == "tell_info"
    assert activity["workflow_name"] == "t_runtime"
    assert (activity["activity_id"], activity["attempt"]) == (1, 1)


def test_the_idempotency_key_is_the_same_for_every_attempt_of_a_call(
    worker: InProcessWorker, log: Path
) -> None:
    result = worker.execute("t_info")
    assert result["attempt"] == 2
    keys = (log / "tell_info.log").read_text().splitlines()
    assert len(keys) == 2
    assert keys[0] == keys[1] == result["key"]


def test_a_plain_def_activity_runs_in_a_worker_thread(worker: InProcessWorker) -> None:
    assert worker.execute("t_runtime")["thread"].startswith("wfrun-activity")


def test_the_next_attempt_reads_the_last_heartbeat_details(
    worker: InProcessWorker, log: Path
) -> None:
    result = worker.execute("t_heartbeats", {"upto": 10})
    assert result == {"attempt": 2, "started_at": 5}
    assert (log / "counts.log").read_text().splitlines() == ["1 from 0", "2 from 5"]


def test_signals_queries_and_an_update_reach_their_handlers(worker: InProcessWorker) -> None:
    from wfrun.temporal.converter import payload

    handle = worker.start("t_messages")
    worker.run(lambda: handle.signal("add", payload(b'{"item": "apple"}')))
    worker.run(lambda: handle.signal("add", payload(b'{"item": "pear"}')))
    old = worker.run(lambda: handle.execute_update("set_limit", payload(b'{"limit": 5}')))
    status = worker.run(lambda: handle.query("status", payload(b"{}")))
    assert old == 3
    assert status == {"items": ["apple", "pear"], "limit": 5}
    worker.run(lambda: handle.signal("finish", payload(b"{}")))
    worker.run(lambda: handle.signal("approval", payload(b'{"approver": "ada"}')))
    assert worker.result(handle) == {"items": ["apple", "pear"], "limit": 5, "approver": "ada"}


def test_an_update_its_validator_refuses_fails_with_the_validators_message(
    worker: InProcessWorker,
) -> None:
    from wfrun.temporal.converter import payload

    handle = worker.start("t_messages")
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        worker.run(lambda: handle.execute_update("set_limit", payload(b'{"limit": 0}')))
    assert "limit must be positive, not 0" in str(caught.value.cause)
    worker.run(lambda: handle.terminate("test over"))


def test_a_query_the_workflow_does_not_define_names_the_ones_it_does(
    worker: InProcessWorker,
) -> None:
    from wfrun.temporal.converter import payload

    handle = worker.start("t_messages")
    with pytest.raises(WorkflowQueryFailedError, match="it defines 'status'"):
        worker.run(lambda: handle.query("nope", payload(b"{}")))
    worker.run(lambda: handle.terminate("test over"))


def test_an_input_sent_before_the_workflow_waits_for_it_is_kept(worker: InProcessWorker) -> None:
    from wfrun.temporal.converter import payload

    handle = worker.start("t_messages")
    worker.run(lambda: handle.signal("approval", payload(b'{"approver": "bob"}')))
    worker.run(lambda: handle.signal("finish", payload(b"{}")))
    assert worker.result(handle)["approver"] == "bob"


def test_a_child_workflow_runs_under_an_id_derived_from_its_parent(
    worker: InProcessWorker,
) -> None:
    handle = worker.start("t_parent", {"n": 21})
    assert worker.result(handle) == {"doubled": 42, "child_id": f"{handle.id}-child-1"}


def test_a_failed_child_is_workflow_failed_error_with_its_cause(worker: InProcessWorker) -> None:
    handle = worker.start("t_parent", {"n": -1})
    result = worker.result(handle)
    assert result["failed"].startswith(f"child run {handle.id}-child-1 of workflow 't_child'")
    assert result["cause"] == "negative: -1"


def test_continue_as_new_carries_the_run_on_with_its_new_input(worker: InProcessWorker) -> None:
    assert worker.execute("t_loop", {"left": 3}) == {"total": 6, "suggested": False}


def test_cancel_reaches_workflow_code_and_the_thread_activity_in_flight(
    worker: InProcessWorker, log: Path
) -> None:
    from conftest import wait_for_file

    handle = worker.start("t_cancel")
    wait_for_file(log / "waits_for_cancel.log")
    worker.run(handle.cancel)
    with pytest.raises(WorkflowFailureError) as caught:
        worker.result(handle)
    assert type(caught.value.cause).__name__ == "CancelledError"
    assert attempts(log, "workflow_saw_cancel") == 1
    wait_for_file(log / "saw_cancel.log")


def test_parallel_activities_and_gather_return_in_order(worker: InProcessWorker) -> None:
    result = worker.execute("t_parallel", {"items": [1, 2, 3]})
    assert result == {"fanned": [2, 4, 6], "gathered": [2, 4, 6]}


def test_an_activity_input_over_the_limit_fails_the_call_before_it_is_scheduled(
    worker: InProcessWorker,
) -> None:
    assert worker.execute("t_big_input") == {"side": "input", "activity": "double"}


def test_an_update_the_workflow_does_not_define_is_refused_naming_the_ones_it_does(
    worker: InProcessWorker,
) -> None:
    from wfrun.temporal.converter import payload

    handle = worker.start("t_messages")
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        worker.run(lambda: handle.execute_update("nope", payload(b"{}")))
    assert "it defines 'set_limit'" in str(caught.value.cause)
    worker.run(lambda: handle.terminate("test over"))


def test_the_sandbox_refuses_io_in_workflow_code_leaving_the_run_open(
    worker: InProcessWorker, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("hello")
    handle = worker.start("t_reads_file", {"path": str(tmp_path / "note.txt")})

    assert "open" in worker.first_task_failure(handle)
    worker.run(lambda: handle.terminate("test over"))


def test_without_the_sandbox_workflow_code_may_do_io(temporal_server: str, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("hello")
    unsandboxed = InProcessWorker(
        temporal_server, [require_workflow_definition(cluster.ReadsFileOnCluster)], sandbox=False
    )
    try:
        assert unsandboxed.execute("t_reads_file", {"path": str(tmp_path / "note.txt")}) == "hello"
    finally:
        unsandboxed.stop()


def test_a_child_past_its_execution_timeout_ends_timed_out(worker: InProcessWorker) -> None:
    handle = worker.start("t_parent_of_slow")
    assert worker.result(handle).startswith(
        f"child run {handle.id}-child-1 of workflow 't_slow_child' ended TIMED_OUT"
    )


def test_a_query_lists_the_inputs_the_run_waits_for_with_their_schemas(
    worker: InProcessWorker,
) -> None:
    from wfrun.temporal.converter import payload
    from wfrun.temporal.runtime import PENDING_INPUTS

    handle = worker.start("t_messages")
    assert worker.run(lambda: handle.query(PENDING_INPUTS, payload(b"{}"))) == {}
    worker.run(lambda: handle.signal("finish", payload(b"{}")))

    async def pending() -> dict:
        for _ in range(600):  # until the run reached its wait_for_input
            found = await handle.query(PENDING_INPUTS, payload(b"{}"))
            if found:
                return found
            await asyncio.sleep(0.05)
        return {}

    found = worker.run(pending)
    assert list(found) == ["approval"]
    assert found["approval"]["required"] == ["approver"]
    worker.run(lambda: handle.terminate("test over"))


def test_a_signal_whose_arguments_do_not_fit_is_dropped_and_the_run_goes_on(
    worker: InProcessWorker,
) -> None:
    from wfrun.temporal.converter import payload

    handle = worker.start("t_messages")
    worker.run(lambda: handle.signal("add", payload(b'{"item": [1, 2]}')))
    worker.run(lambda: handle.signal("add", payload(b'{"item": "kept"}')))
    worker.run(lambda: handle.signal("finish", payload(b"{}")))
    worker.run(lambda: handle.signal("approval", payload(b'{"approver": "ada"}')))
    assert worker.result(handle)["items"] == ["kept"]
