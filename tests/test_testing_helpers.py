"""wfrun.testing for users' tests: activities mocked by name, time skipped, histories replayed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import wfrun as workflows
from wfrun.errors import UsageError, WorkflowFailedError
from wfrun.testing import FakeClock, mock_activities, replay, run_workflow

from conftest import attempts
from flows.mocked import WelcomeWorkflow

PROFILE = {"name": "Ada", "email": "ada@example.com"}


def test_a_mocked_activity_runs_instead_of_the_real_one(log: Path) -> None:
    run = run_workflow(
        WelcomeWorkflow, {"user_id": "7"}, activities={"fetch_profile": lambda user_id: PROFILE}
    )
    assert run.result == "Ada: sent"
    assert attempts(log, "fetch_profile") == 0
    assert attempts(log, "send_email") == 1


def test_a_plain_def_activity_is_mocked_in_its_thread_too(log: Path) -> None:
    run = run_workflow(
        WelcomeWorkflow, {"user_id": "7"}, activities={"send_email": lambda to, body: False}
    )
    assert run.result == "Real Person: not sent"
    assert attempts(log, "send_email") == 0


def test_an_async_stand_in_is_awaited() -> None:
    async def fetch(user_id: str) -> dict:
        await asyncio.sleep(0)
        return PROFILE

    run = run_workflow(WelcomeWorkflow, {"user_id": "7"}, activities={"fetch_profile": fetch})
    assert run.result == "Ada: sent"


def test_each_call_to_a_stand_in_is_recorded_with_its_arguments_by_name() -> None:
    run = run_workflow(
        WelcomeWorkflow,
        {"user_id": "7"},
        activities={"fetch_profile": lambda user_id: PROFILE, "send_email": lambda to, body: True},
    )
    assert run.calls_to("fetch_profile") == [{"user_id": "7"}]
    assert run.calls_to("send_email") == [{"to": "ada@example.com", "body": "Welcome, Ada!"}]
    assert [call.name for call in run.calls] == ["fetch_profile", "send_email"]


def test_a_stand_in_that_raises_fails_the_attempt_and_is_retried() -> None:
    def down(user_id: str) -> dict:
        raise ConnectionError("profile service down")

    with (
        mock_activities({"fetch_profile": down}) as calls,
        pytest.raises(WorkflowFailedError) as failed,
    ):
        asyncio.run(
            workflows.execute_workflow(WelcomeWorkflow, {"user_id": "7"}, clock=FakeClock())
        )
    assert "ConnectionError: profile service down" in str(failed.value)
    assert len(calls) == 3  # the activity's retry policy: three attempts in all


def test_a_stand_in_result_is_recorded_and_replays(home: Path) -> None:
    run = run_workflow(
        WelcomeWorkflow, {"user_id": "7"}, activities={"fetch_profile": lambda user_id: PROFILE}
    )
    replayed = replay(home / "runs" / f"{run.run_id}.jsonl", WelcomeWorkflow)
    assert (replayed.run_id, replayed.finished) == (run.run_id, True)


def test_a_mock_applies_only_within_its_call(log: Path) -> None:
    run_workflow(
        WelcomeWorkflow, {"user_id": "7"}, activities={"fetch_profile": lambda user_id: PROFILE}
    )
    after = asyncio.run(workflows.execute_workflow(WelcomeWorkflow, {"user_id": "8"}))
    assert after == "Real Person: sent"
    assert attempts(log, "fetch_profile") == 1


def test_concurrent_runs_each_see_only_their_own_stand_ins() -> None:
    async def with_name(name: str) -> str:
        with mock_activities({"fetch_profile": lambda user_id: {**PROFILE, "name": name}}):
            return await workflows.execute_workflow(WelcomeWorkflow, {"user_id": name})

    async def both() -> list[str]:
        return await asyncio.gather(*(with_name(n) for n in ["Ada", "Bo", "Cy", "Di"]))

    assert asyncio.run(both()) == ["Ada: sent", "Bo: sent", "Cy: sent", "Di: sent"]


def test_mocking_a_name_no_activity_has_is_refused() -> None:
    with pytest.raises(UsageError, match="no activity is named 'fetch_profil'"):
        run_workflow(
            WelcomeWorkflow, {"user_id": "7"}, activities={"fetch_profil": lambda user_id: PROFILE}
        )


def test_run_workflow_skips_durable_timers() -> None:
    run = run_workflow(WelcomeWorkflow, {"user_id": "7", "wait_days": 30})
    assert run.result == "Real Person: sent"
    assert run.clock is not None
    assert run.clock.slept == [30 * 24 * 3600]


def test_run_workflow_inside_an_event_loop_says_what_to_use_instead() -> None:
    async def inside() -> None:
        run_workflow(WelcomeWorkflow, {"user_id": "7"})

    with pytest.raises(UsageError, match="mock_activities"):
        asyncio.run(inside())
