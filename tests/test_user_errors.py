"""Errors point at the user's code: their exception types, their files and lines."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import pytest

import wfrun as workflows
from wfrun.events import ActivityFailed
from wfrun.local import guard
from wfrun.local.store import RunStore

from conftest import FLOWS, cli, cut_history, wf
from flows import user_errors
from flows.user_errors import CaughtPayWorkflow, DiceWorkflow, EditedWorkflow, PayWorkflow

SOURCE = (FLOWS / "user_errors.py").read_text().splitlines()


def line_of(marker: str) -> int:
    return next(n for n, text in enumerate(SOURCE, start=1) if marker in text)


RAISED = line_of("RAISED HERE")


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


def resume_after_a_crash(workflow: type, run_id: str) -> str:
    """Run ``workflow`` live, forget what this process saw, cut the history back to its second
    activity's start, and resume: the `NonDeterminismError`'s message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", workflows.DeterminismWarning)
        asyncio.run(workflows.execute_workflow(workflow, execution_id=run_id))
    guard.forget()  # as a resume in a new process would start
    cut_history(run_id, keep=6)
    with pytest.raises(workflows.NonDeterminismError) as caught:
        asyncio.run(workflows.resume_workflow(run_id))
    return str(caught.value)


def test_a_mismatch_after_a_random_call_says_the_code_is_not_deterministic() -> None:
    message = resume_after_a_crash(DiceWorkflow, "dice")
    assert "The workflow code is not deterministic: it called random.random() at " in message
    assert f"user_errors.py:{line_of('IMPURE CALL')}" in message
    assert "code changed" not in message


def test_a_mismatch_of_edited_code_says_the_code_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    with warnings.catch_warnings():
        asyncio.run(workflows.execute_workflow(EditedWorkflow, execution_id="edited"))
    monkeypatch.setitem(user_errors.DESTINATION, "order", 5)
    cut_history("edited", keep=6)
    with pytest.raises(workflows.NonDeterminismError) as caught:
        asyncio.run(workflows.resume_workflow("edited"))
    assert "The workflow code changed since this run started" in str(caught.value)
    assert "not deterministic" not in str(caught.value)


def test_a_result_that_does_not_match_its_annotation_says_where_and_how_to_fix_it() -> None:
    from flows.contract import BadValuesWorkflow

    message = asyncio.run(workflows.execute_workflow(BadValuesWorkflow, {"which": "annotation"}))
    line = next(  # where the definition starts: its decorator's line
        n - 1
        for n, text in enumerate((FLOWS / "contract.py").read_text().splitlines(), start=1)
        if "async def promises_a_response" in text
    )
    assert f"(contract.py:{line})" in message
    assert "return a value that fits ApiResponse, or annotate what it returns (-> dict)" in message


BAD_DEFINITION = """\
import wfrun as workflows


class Payments:
    @workflows.activity
    async def charge(self, amount: int) -> str:
        return "ok"
"""


def test_a_definition_error_at_import_shows_the_users_frames_not_wfrun_s(
    isolated: Path,
) -> None:
    (isolated / "payments.py").write_text(BAD_DEFINITION)
    result = cli("start", "payments.py:Payments")
    assert result.exit_code == 2
    assert 'payments.py", line 5, in Payments' in result.output
    assert "wfrun/" not in result.output.replace("wfrun:", "")


def test_a_definition_error_names_the_users_file_and_line() -> None:
    with pytest.raises(workflows.DefinitionError) as caught:

        class Payments:
            @workflows.activity  # DECORATED HERE
            async def charge(self, amount: int) -> str:
                return "ok"

    here = next(
        n
        for n, text in enumerate(Path(__file__).read_text().splitlines(), start=1)
        if "# DECORATED HERE" in text and "@workflows" in text
    )
    assert str(caught.value).startswith(f"{__file__}:{here}: ")
