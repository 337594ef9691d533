"""Code written for Mistral Workflows (on Temporal) runs unchanged: its spellings are accepted."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

import wfrun as workflows
from wfrun.definitions import activity_definition_of

from conftest import attempts


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
