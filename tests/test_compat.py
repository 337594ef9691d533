"""Code written for Mistral Workflows (on Temporal) runs unchanged: its spellings are accepted."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import Result

import wfrun as workflows
from wfrun.definitions import activity_definition_of
from wfrun.testing import FakeClock, replay

from conftest import attempts, backdate, cli, cut_history, history, wf, write_module


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


# -- execute_activities_in_parallel ------------------------------------------------------------


def fan_out(pattern: str, run_id: str = "p", **params: Any) -> Any:
    from flows.compat import FanOutWorkflow

    return asyncio.run(
        workflows.execute_workflow(
            FanOutWorkflow, {"pattern": pattern, **params}, execution_id=run_id
        )
    )


ENDS = ("ActivityCompleted", "ActivityFailed", "ActivityTimedOut", "ActivityCanceled")


def in_flight(events: list[dict]) -> list[int]:
    """How many activity calls were in flight after each event."""
    counts, open_calls = [], set()
    for event in events:
        if event["type"] == "ActivityScheduled":
            open_calls.add(event["seq"])
        elif event["type"] in ENDS and event.get("retry_in") is None:
            open_calls.discard(event["seq"])
        counts.append(len(open_calls))
    return counts


def test_execute_activities_in_parallel_runs_every_item_at_once_in_the_items_order(
    home: Path,
) -> None:
    assert fan_out("models") == ["DOC 0", "DOC 1", "DOC 2", "DOC 3", "DOC 4"]
    assert max(in_flight(history(home, "p"))) == 5
    events = history(home, "p")
    scheduled = [e["input"]["doc"]["doc_id"] for e in events if e["type"] == "ActivityScheduled"]
    assert scheduled == [0, 1, 2, 3, 4]


def test_execute_activities_in_parallel_takes_dicts_of_arguments_by_name() -> None:
    assert fan_out("dicts") == ["a:1", "b:2"]


def test_execute_activities_in_parallel_keeps_at_most_the_limit_in_flight(home: Path) -> None:
    assert fan_out("models", limit=2) == ["DOC 0", "DOC 1", "DOC 2", "DOC 3", "DOC 4"]
    assert max(in_flight(history(home, "p"))) == 2


def test_execute_activities_in_parallel_follows_a_chain_until_it_ends() -> None:
    assert fan_out("chain") == ["PAGE 0", "PAGE 1", "PAGE 2"]


def test_execute_activities_in_parallel_fetches_items_by_index_with_extra_params() -> None:
    assert fan_out("offset") == ["P 0", "P 1", "P 2"]


def test_execute_activities_in_parallel_replays_without_running_a_call_again(
    home: Path, log: Path
) -> None:
    fan_out("models", limit=2)
    path = home / "runs" / "p.jsonl"
    replay(path, _fan_out_workflow())  # today's code asks for the recorded calls, in order
    cut_history("p", len(history(home, "p")) - 1)  # every call done, the end not recorded
    assert asyncio.run(workflows.resume_workflow("p")) == [f"DOC {i}" for i in range(5)]
    assert [attempts(log, f"shout{i}") for i in range(5)] == [1, 1, 1, 1, 1]


def test_execute_activities_in_parallel_raises_the_first_failure_itself() -> None:
    assert fan_out("failing") == ["ActivityError: no doc 2"]


def test_execute_activities_in_parallel_refuses_a_function_that_is_no_activity() -> None:
    with pytest.raises(workflows.WorkflowFailedError) as failed:
        fan_out("plain")
    assert "must be an activity" in str(failed.value.__cause__)


def _fan_out_workflow() -> type:
    from flows.compat import FanOutWorkflow

    return FanOutWorkflow


# -- Mistral's options that only a cluster uses ------------------------------------------------


def test_rate_limit_takes_mistral_s_class_with_a_note() -> None:
    from flows.compat import unlimited

    limit = workflows.RateLimit(time_window_in_sec=1, max_execution=100, key="mistral_api")
    with pytest.warns(workflows.errors.ClusterOnlyWarning, match="rate_limit only matters"):
        workflows.activity(rate_limit=limit, name="limited")(unlimited.__wrapped__)
    assert workflows.RateLimit(time_window_in_sec=1, max_calls=100).max_execution == 100


def test_a_rate_limit_outside_mistral_s_bounds_is_a_definition_error() -> None:
    with pytest.raises(workflows.DefinitionError, match="time_window_in_sec must be from 1 to"):
        workflows.RateLimit(time_window_in_sec=0, max_execution=10)
    with pytest.raises(workflows.DefinitionError, match="needs max_execution"):
        workflows.RateLimit(time_window_in_sec=1)


def test_enforce_determinism_false_turns_the_determinism_warnings_off() -> None:
    from wfrun.local import guard

    from flows.compat import UnguardedWorkflow

    guard._reported.clear()  # a line is reported once per process
    with warnings.catch_warnings():
        warnings.simplefilter("error", workflows.DeterminismWarning)
        assert asyncio.run(workflows.execute_workflow(UnguardedWorkflow)) is True


def test_schedules_are_accepted_with_a_note_to_use_cron() -> None:
    class Report:
        @workflows.workflow.entrypoint
        async def run(self, report_type: str = "daily") -> str:
            return report_type

    schedule = {"input": {"report_type": "daily"}, "cron_expressions": ["0 0 * * *"]}
    with pytest.warns(workflows.errors.ClusterOnlyWarning, match="from cron") as caught:
        workflows.workflow.define(name="report", schedules=[schedule])(Report)
    [note] = caught
    assert "wfrun start" in str(note.message)
    assert note.filename == __file__  # it points at the decorated class


def test_signal_query_and_update_take_mistral_s_description() -> None:
    from wfrun.definitions import require_workflow_definition

    from flows.compat import DescribedHandlersWorkflow

    definition = require_workflow_definition(DescribedHandlersWorkflow)
    assert sorted(definition.handlers) == [
        ("query", "status"),
        ("signal", "approve"),
        ("update", "reset"),
    ]


# -- a forgotten await -------------------------------------------------------------------------

FORGETFUL = """
    import os

    import wfrun as workflows


    @workflows.activity
    async def record(name: str) -> str:
        with open(os.path.join(os.environ["WFRUN_TEST_LOG"], name + ".log"), "a") as log:
            log.write("x\\n")
        return name


    @workflows.workflow.define(name="forgetful")
    class Forgetful:
        @workflows.workflow.entrypoint
        async def run(self) -> list[str]:
            first = await record("first")
            {CALL}
            last = await record("last")
            return [first, last]
"""


def start_forgetful(isolated: Path, call: str) -> tuple[Path, Result]:
    module = write_module(isolated / "app.py", FORGETFUL.replace("{CALL}", call))
    return module, cli("start", f"{module}:Forgetful", "--run-id", "f")


def line_of(module: Path, text: str) -> int:
    return next(n for n, line in enumerate(module.read_text().splitlines(), 1) if text in line)


def test_a_forgotten_await_blocks_the_run_naming_the_activity_and_its_line(
    isolated: Path, home: Path, log: Path
) -> None:
    module, result = start_forgetful(isolated, 'record("forgotten")')
    assert result.exit_code == 3, result.output
    where = f"{module}:{line_of(module, 'record(' + chr(34) + 'forgotten')}"
    assert f"activity 'record' was called at {where} but never awaited: add `await`" in " ".join(
        result.stderr.split()
    )
    assert history(home, "f")[-1]["type"] == "RunBlocked"
    scheduled = [e["input"] for e in history(home, "f") if e["type"] == "ActivityScheduled"]
    assert scheduled == [{"name": "first"}]  # nothing of the step that lost the call
    assert (attempts(log, "forgotten"), attempts(log, "last")) == (0, 0)


def test_once_the_await_is_added_resume_replays_and_carries_on(isolated: Path, log: Path) -> None:
    module, blocked = start_forgetful(isolated, 'record("forgotten")')
    assert blocked.exit_code == 3, blocked.output
    write_module(module, FORGETFUL.replace("{CALL}", 'await record("forgotten")'))
    resumed = cli("resume", "f")
    assert resumed.exit_code == 0, resumed.output
    assert orjson.loads(resumed.stdout) == ["first", "last"]
    assert [attempts(log, n) for n in ("first", "forgotten", "last")] == [1, 1, 1]


def test_a_call_kept_in_a_variable_and_never_awaited_is_caught_when_the_workflow_ends(
    isolated: Path,
) -> None:
    module, result = start_forgetful(isolated, 'kept = record("kept")')
    assert result.exit_code == 3, result.output
    where = f"{module}:{line_of(module, 'kept = record')}"
    assert f"called at {where} but never awaited" in " ".join(result.stderr.split())
    write_module(module, FORGETFUL.replace("{CALL}", 'kept = await record("kept")'))
    resumed = cli("resume", "f")
    assert resumed.exit_code == 0, resumed.output  # what was recorded replays as it was
    assert orjson.loads(resumed.stdout) == ["first", "last"]


def test_a_forgotten_await_outside_a_workflow_is_python_s_warning_naming_the_activity() -> None:
    from flows.compat import unlimited

    with pytest.warns(RuntimeWarning, match="coroutine 'unlimited' was never awaited"):
        unlimited()  # in CPython the coroutine is collected, and the warning given, right here


# -- Mistral's starter examples, through `wfrun start` ---------------------------------------


def starter(name: str) -> str:
    return f"{wf('mistral_starters')}:{name}"


def test_mistral_s_quickstart_hello_workflow_runs_with_its_defaults_and_with_a_name() -> None:
    hello = starter("HelloWorkflow")
    assert orjson.loads(cli("start", hello).stdout) == "Hello, World! Welcome to Mistral Workflows."
    named = cli("start", hello, "--arg", "name=Ada")
    assert orjson.loads(named.stdout) == "Hello, Ada! Welcome to Mistral Workflows."


def test_mistral_s_first_workflow_with_its_worker_main_runs() -> None:
    result = cli("start", starter("simple_example_workflow"), "--arg", "name=Ada")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {"message": "Hello, Ada!"}


def test_mistral_s_approval_flow_waits_for_its_signal() -> None:
    waiting = cli("start", starter("ApprovalWorkflow"), "--arg", "request_id=r1", "--run-id", "a")
    assert waiting.exit_code == 75, waiting.output  # a 24 h wait: the process lets it go
    approved = cli("signal", "a", "approve")
    assert approved.exit_code == 0, approved.output
    assert orjson.loads(approved.stdout) == "Request r1 approved"


def test_mistral_s_retry_example_retries_the_failing_call(log: Path) -> None:
    params = '{"url": "https://api.example.com/orders", "payload": {"id": 7}}'
    result = cli("start", starter("ExternalApiWorkflow"), "--input", params)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {"status": 200, "body": {"received": {"id": 7}}}
    assert attempts(log, "external_api") == 2


def test_mistral_s_asyncio_gather_example_runs() -> None:
    items = '{"items": ["alpha", "beta", "gamma", "delta"]}'
    result = cli("start", starter("ConcurrencyWorkflow"), "--input", items)
    assert result.exit_code == 0, result.output
    assert [r["result"] for r in orjson.loads(result.stdout)] == [
        "processed:alpha",
        "processed:beta",
        "processed:gamma",
        "processed:delta",
    ]


def test_mistral_s_list_executor_example_runs() -> None:
    result = cli("start", starter("ListExecutorPrimitiveExample"))
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == [f"processed_item_{i}_{i}" for i in range(10)]
