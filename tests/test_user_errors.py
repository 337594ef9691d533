"""Errors point at the user's code: their exception types, their files and lines."""

from __future__ import annotations

import asyncio

import pytest

import wfrun as workflows
from wfrun.events import ActivityFailed
from wfrun.local.store import RunStore

from conftest import FLOWS, cli, wf
from flows.user_errors import CaughtPayWorkflow, PayWorkflow

SOURCE = (FLOWS / "user_errors.py").read_text().splitlines()
RAISED = next(n for n, text in enumerate(SOURCE, start=1) if "RAISED HERE" in text)


def test_an_activity_failure_is_seen_under_the_users_exception_type() -> None:
    seen = asyncio.run(workflows.execute_workflow(CaughtPayWorkflow, {"amount": 5}))
    assert seen["class"] == "PaymentDeclined"
    assert seen["repr"] == "PaymentDeclined('card declined for 5')"
    assert seen["application_error"] is True


def test_the_rebuilt_failure_carries_the_activitys_traceback() -> None:
    seen = asyncio.run(workflows.execute_workflow(CaughtPayWorkflow, {"amount": 5}))
    [note] = seen["notes"]
    assert f'user_errors.py", line {RAISED}, in charge' in note


def test_an_activity_failure_is_recorded_with_the_users_frames_only() -> None:
    with pytest.raises(workflows.WorkflowFailedError):
        asyncio.run(workflows.execute_workflow(PayWorkflow, {"amount": 5}, execution_id="p"))
    [failed] = [e for e in RunStore().read("p").events if isinstance(e, ActivityFailed)]
    traceback = failed.error["traceback"]
    assert f'user_errors.py", line {RAISED}, in charge' in traceback
    assert "wfrun/local" not in traceback


def test_show_names_the_users_exception_type_and_its_traceback() -> None:
    assert (
        cli(
            "start", wf("user_errors") + ":PayWorkflow", "--arg", "amount=5", "--run-id", "p"
        ).exit_code
        == 1
    )
    shown = cli("show", "p").output
    assert "wfrun.errors.ApplicationError" not in shown
    assert "PaymentDeclined: card declined for 5" in shown
    assert f"line {RAISED}, in charge" in shown
