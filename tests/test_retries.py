"""Activities are attempted under their retry policy and bounded by their timeout."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

import wfrun as workflows
from wfrun.events import ActivityFailed, ActivityTimedOut
from wfrun.local.store import RunStore
from wfrun.policy import RetryPolicy

from conftest import attempts, cli, wf
from flows.steps import (
    CaughtWorkflow,
    ExhaustedWorkflow,
    FlakyWorkflow,
    HungWorkflow,
    NonRetryableWorkflow,
    flaky,
)


def run(workflow: type, params: object = None, run_id: str | None = None) -> object:
    return asyncio.run(workflows.execute_workflow(workflow, params, execution_id=run_id))


def events_of(run_id: str, cls: type) -> list:
    return [e for e in RunStore().read(run_id).events if isinstance(e, cls)]


def test_a_failing_activity_is_retried_until_it_succeeds(log: Path) -> None:
    assert run(FlakyWorkflow, {"fail_times": 2}) == "ok after 3"
    assert attempts(log, "flaky") == 3


def test_failed_attempts_are_recorded_with_their_retry_delay(log: Path) -> None:
    run(FlakyWorkflow, {"fail_times": 2}, run_id="r")
    failures = events_of("r", ActivityFailed)
    assert [f.attempt for f in failures] == [1, 2]
    assert [f.retry_in for f in failures] == [0.01, 0.02]
    assert failures[0].error["type"] == "ConnectionError"
    assert failures[0].error["message"] == "attempt 1 failed"


def test_an_activity_that_keeps_failing_stops_after_max_attempts(log: Path) -> None:
    with pytest.raises(workflows.WorkflowFailedError) as failed:
        run(ExhaustedWorkflow)
    assert attempts(log, "always_fails") == 3
    assert "ActivityError" in str(failed.value)
    assert "boom 3" in str(failed.value)


def test_the_workflow_sees_activity_error_caused_by_the_last_failure(log: Path) -> None:
    seen = run(CaughtWorkflow)
    assert seen == {
        "attempts": 3,
        "retry_state": "MAXIMUM_ATTEMPTS_REACHED",
        "cause_type": "ValueError",
        "cause_message": "boom 3",
    }


def test_non_retryable_application_error_stops_at_once(log: Path) -> None:
    with pytest.raises(workflows.WorkflowFailedError, match="card declined"):
        run(NonRetryableWorkflow, {"which": "flag"})
    assert attempts(log, "refuses") == 1


def test_an_error_type_listed_as_non_retryable_stops_at_once(log: Path) -> None:
    with pytest.raises(workflows.WorkflowFailedError, match="KeyError"):
        run(NonRetryableWorkflow, {"which": "listed"})
    assert attempts(log, "lookup") == 1


def test_a_hung_attempt_is_cancelled_at_its_timeout_and_retried(log: Path) -> None:
    with pytest.raises(workflows.WorkflowFailedError, match="start_to_close"):
        run(HungWorkflow, run_id="hung")
    assert attempts(log, "hangs") == 2
    # Each attempt was cancelled, the first before the second began, not left to sleep its 60 s.
    story = (log / "hangs_story.log").read_text().splitlines()
    assert story == ["started", "cancelled", "started", "cancelled"]
    timeouts = events_of("hung", ActivityTimedOut)
    assert [(t.timeout, t.limit) for t in timeouts] == [("start_to_close", 0.2)] * 2
    assert [t.retry_in is None for t in timeouts] == [False, True]
    assert all(t.duration >= 0.2 for t in timeouts)  # not before its time


def test_an_activity_called_outside_a_workflow_runs_with_its_retries(log: Path) -> None:
    assert asyncio.run(flaky(1)) == "ok after 2"
    assert attempts(log, "flaky") == 2


def test_an_activity_called_outside_a_workflow_raises_its_own_last_error(log: Path) -> None:
    with pytest.raises(ConnectionError, match="attempt 5 failed"):
        asyncio.run(flaky(10))


def test_the_delay_grows_by_the_coefficient_up_to_the_maximum() -> None:
    policy = RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=5),
    )
    assert [policy.delay_after(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]


def test_no_retry_after_the_last_attempt() -> None:
    policy = RetryPolicy(maximum_attempts=2)
    assert policy.next_delay(1, ["ValueError"], False) == 1.0
    assert policy.next_delay(2, ["ValueError"], False) is None


def test_zero_max_attempts_means_no_limit() -> None:
    assert RetryPolicy(maximum_attempts=0).next_delay(1000, ["ValueError"], False) == 100.0


def test_listing_a_base_class_stops_its_subclasses() -> None:
    policy = RetryPolicy(non_retryable_error_types=("OSError",))
    assert policy.next_delay(1, ["ConnectionError", "OSError", "Exception"], False) is None


def test_cli_reports_an_exhausted_activity_as_a_failed_workflow(log: Path) -> None:
    result = cli("start", f"{wf('steps')}:ExhaustedWorkflow")
    assert result.exit_code == 1
    assert "failed" in result.stderr
    assert "boom 3" in result.stderr
    assert result.stdout == ""
