"""Code written for Mistral Workflows (on Temporal) runs unchanged: its spellings are accepted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import wfrun as workflows
from wfrun.definitions import activity_definition_of
from wfrun.testing import FakeClock

from conftest import attempts, backdate, cut_history, history


def test_retry_policy_max_attempts_none_means_no_limit() -> None:
    from flows.compat import unlimited

    definition = activity_definition_of(unlimited)
    assert definition is not None
    assert definition.options.retry_policy.maximum_attempts == 0


def test_timeouts_and_intervals_may_be_given_in_seconds() -> None:
    from flows.compat import in_seconds

    definition = activity_definition_of(in_seconds)
    assert definition is not None
    options = definition.options
    assert options.start_to_close_timeout == timedelta(seconds=30)
    assert options.heartbeat_timeout == timedelta(seconds=5)
    assert options.retry_policy.initial_interval == timedelta(seconds=0.5)


def test_a_duration_that_is_no_number_is_a_definition_error() -> None:
    from flows.compat import unlimited

    decorate = workflows.activity(start_to_close_timeout="30s")  # type: ignore[call-overload]
    with pytest.raises(workflows.DefinitionError, match="timedelta or a number of seconds"):
        decorate(unlimited.__wrapped__)


def test_mistral_helpers_inside_a_workflow(home: object) -> None:
    from flows.compat import MistralStyleWorkflow

    result = asyncio.run(workflows.execute_workflow(MistralStyleWorkflow, execution_id="m"))
    assert result == {"execution_id": "m", "cause": "ValueError", "replaying": False}


def test_any_exception_flagged_non_retryable_is_not_retried(log: Path) -> None:
    from flows.compat import FlaggedWorkflow

    result = asyncio.run(workflows.execute_workflow(FlaggedWorkflow, execution_id="f"))
    assert result == "NON_RETRYABLE_FAILURE"
    assert attempts(log, "flagged") == 1


def test_options_that_only_a_cluster_uses_are_accepted_with_a_note() -> None:
    from flows.compat import unlimited

    with pytest.warns(workflows.errors.ClusterOnlyWarning, match="rate_limit only matters"):
        workflows.activity(rate_limit={"per_second": 5}, name="limited")(unlimited.__wrapped__)


# -- schedule_to_close_timeout -----------------------------------------------------------------


def timed_out_events(home: Path, run_id: str) -> list[dict]:
    return [e for e in history(home, run_id) if e["type"] == "ActivityTimedOut"]


def test_schedule_to_close_timeout_stops_retries_that_would_start_past_it(
    home: Path, log: Path
) -> None:
    """25 s in all, 10 s between attempts: the fourth attempt would start at 30 s."""
    from flows.compat import OutOfTimeWorkflow

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    result = asyncio.run(
        workflows.execute_workflow(
            OutOfTimeWorkflow, {"which": "keeps_failing"}, execution_id="s", clock=clock
        )
    )
    assert result == {"cause": "TimeoutError", "retry_state": "TIMEOUT"}
    assert attempts(log, "keeps_failing") == 3
    [event] = timed_out_events(home, "s")
    assert (event["timeout"], event["limit"], event["retry_in"]) == ("schedule_to_close", 25, None)
    assert "ValueError: still down" in event["message"]


def test_schedule_to_close_timeout_cuts_an_attempt_short(home: Path, log: Path) -> None:
    from flows.compat import OutOfTimeWorkflow

    result = asyncio.run(
        workflows.execute_workflow(OutOfTimeWorkflow, {"which": "hangs"}, execution_id="h")
    )
    assert result == {"cause": "TimeoutError", "retry_state": "TIMEOUT"}
    assert attempts(log, "hangs") == 1
    [event] = timed_out_events(home, "h")
    assert (event["timeout"], event["attempt"]) == ("schedule_to_close", 1)


def test_schedule_to_close_timeout_counts_from_the_recorded_scheduling_across_resumes(
    home: Path, log: Path
) -> None:
    """Down for 1000 s after the first attempt failed: the 100 s budget is spent on resume."""
    from flows.compat import OutOfTimeWorkflow

    asyncio.run(
        workflows.execute_workflow(OutOfTimeWorkflow, {"which": "fails_once"}, execution_id="r")
    )
    types = [e["type"] for e in history(home, "r")]
    cut_history("r", types.index("ActivityFailed") + 1)  # as if it crashed before attempt 2
    backdate("r", 1000)
    ran = attempts(log, "fails_once")
    result = asyncio.run(workflows.resume_workflow("r"))
    assert result == {"cause": "TimeoutError", "retry_state": "TIMEOUT"}
    assert attempts(log, "fails_once") == ran  # the resume made no attempt
    [event] = timed_out_events(home, "r")
    assert "before attempt 2 could start" in event["message"]


def test_schedule_to_close_timeout_bounds_a_direct_call_too() -> None:
    from flows.compat import keeps_failing

    with pytest.raises(TimeoutError, match="schedule_to_close_timeout of 25s") as caught:
        asyncio.run(_direct_with_fake_clock(keeps_failing))
    assert isinstance(caught.value.__cause__, ValueError)


async def _direct_with_fake_clock(fn: Any) -> Any:
    from wfrun.local import DirectRuntime
    from wfrun.runtime import use_direct_runtime

    use_direct_runtime(DirectRuntime(FakeClock(datetime(2026, 1, 1, tzinfo=UTC))))
    try:
        return await fn()
    finally:
        use_direct_runtime(DirectRuntime())
