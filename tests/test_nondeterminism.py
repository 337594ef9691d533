"""Changed workflow code meets an old history: precise NonDeterminismError, nothing touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import attempts, cli, cut_history, write_module

ORDER_V1 = """
    from flows.steps import log_attempt
    import wfrun as workflows

    @workflows.activity
    async def charge(order: str, amount: int) -> str:
        log_attempt("charge")
        return f"charged {amount}"

    @workflows.activity
    async def ship(order: str) -> str:
        log_attempt("ship")
        return "shipped"

    @workflows.activity
    async def notify(order: str) -> str:
        log_attempt("notify")
        return "notified"

    @workflows.activity
    async def fraud_check(order: str) -> str:
        log_attempt("fraud_check")
        return "clean"

    @workflows.workflow.define(name="order")
    class OrderWorkflow:
        @workflows.workflow.entrypoint
        async def run(self, order: str) -> list:
            return [await charge(order, 100), await ship(order), await notify(order)]
"""

BODY = "return [await charge(order, 100), await ship(order), await notify(order)]"


def variant(new_body: str) -> str:
    return ORDER_V1.replace(BODY, new_body)


@pytest.fixture
def order(isolated: Path) -> Path:
    return write_module(isolated / "order.py", ORDER_V1)


def crashed_after(module: Path, completed: int) -> Path:
    """A run of v1 whose process died after ``completed`` activities had completed."""
    result = cli("start", f"{module}:OrderWorkflow", "--arg", "order=A1", "--run-id", "o")
    assert result.exit_code == 0, result.stderr
    return cut_history("o", keep=1 + 3 * completed)  # each activity: scheduled, started, done


def resume_with(module: Path, source: str) -> tuple[int, str]:
    write_module(module, source)
    result = cli("resume", "o")
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("change", "recorded", "requested"),
    [
        (
            "return [await charge(order, 100), await fraud_check(order), await notify(order)]",
            'activity ship(order="A1")',
            'activity fraud_check(order="A1")',
        ),
        (
            "return [await charge(order, 120), await ship(order), await notify(order)]",
            'activity charge(order="A1", amount=100)',
            'activity charge(order="A1", amount=120)',
        ),
        (
            "return [await charge(order, 100)]",
            'activity ship(order="A1")',
            "nothing: the workflow code returned",
        ),
        (
            "await workflows.workflow.sleep(1)\n"
            "            return [await charge(order, 100), await ship(order), await notify(order)]",
            'activity charge(order="A1", amount=100)',
            "a timer of 1s",
        ),
    ],
    ids=["another-activity", "other-input", "fewer-steps", "a-timer-first"],
)
def test_changed_code_stops_with_exit_3_showing_both_sides_and_touches_nothing(
    order: Path, log: Path, change: str, recorded: str, requested: str
) -> None:
    path = crashed_after(order, completed=2)
    before = path.read_bytes()
    code, message = resume_with(order, variant(change))
    assert code == 3
    assert f"the history holds {recorded}" in message
    assert f"the code asked for {requested}" in message
    assert "run o does not replay: at event" in message
    assert "revert the change" in message
    assert path.read_bytes() == before
    assert attempts(log, "notify") == 1  # from the original run only: nothing ran


def test_more_steps_after_the_recorded_ones_are_simply_carried_out(order: Path, log: Path) -> None:
    crashed_after(order, completed=2)
    extra = "return [await charge(order, 100), await ship(order), await notify(order), 'extra']"
    code, _ = resume_with(order, variant(extra))
    assert code == 0


def test_a_finished_history_is_compared_with_what_the_code_returns(order: Path) -> None:
    cli("start", f"{order}:OrderWorkflow", "--arg", "order=A1", "--run-id", "o")
    write_module(
        order,
        variant(
            "return [await charge(order, 100), await ship(order), (await notify(order)).upper()]"
        ),
    )
    result = cli("replay", "o")
    assert result.exit_code == 3
    assert 'a workflow returning ["charged 100","shipped","notified"]' in result.stderr
    assert 'a workflow returning ["charged 100","shipped","NOTIFIED"]' in result.stderr


def test_code_going_on_past_a_finished_history_is_a_mismatch(order: Path, log: Path) -> None:
    cli("start", f"{order}:OrderWorkflow", "--arg", "order=A1", "--run-id", "o")
    write_module(
        order,
        variant(
            "return [await charge(order, 100), await ship(order), await notify(order), "
            "await notify(order)]"
        ),
    )
    result = cli("replay", "o")
    assert result.exit_code == 3
    assert "the history holds the end of the workflow (WorkflowCompleted)" in result.stderr
    assert "the code asked for more: the workflow code has not returned" in result.stderr
    assert attempts(log, "notify") == 1


def test_replay_agrees_on_unchanged_code_and_runs_no_activity(order: Path, log: Path) -> None:
    path = crashed_after(order, completed=2)
    before = path.read_bytes()
    result = cli("replay", "o")
    assert result.exit_code == 0, result.stderr
    assert "today's code agrees with its 7 events" in result.stderr
    assert "a resume would go on with 1 new step" in result.stderr
    assert path.read_bytes() == before
    assert [attempts(log, n) for n in ("charge", "ship", "notify")] == [1, 1, 1]


def test_replay_shows_the_difference_with_exit_3(order: Path) -> None:
    crashed_after(order, completed=2)
    write_module(
        order, variant("return [await charge(order, 120), await ship(order), await notify(order)]")
    )
    result = cli("replay", "o")
    assert result.exit_code == 3
    assert "amount=100" in result.stderr
    assert "amount=120" in result.stderr


def test_a_patched_branch_lets_an_in_flight_run_finish_on_new_code(order: Path, log: Path) -> None:
    crashed_after(order, completed=2)  # it has charged and shipped
    unguarded = (
        "return [await charge(order, 100), await fraud_check(order), "
        "await ship(order), await notify(order)]"
    )
    code, _ = resume_with(order, variant(unguarded))
    assert code == 3  # inserting the step breaks the run in flight...
    patched = (
        "first = await charge(order, 100)\n"
        "            checked = [await fraud_check(order)] "
        "if workflows.workflow.patched('fraud-check') else []\n"
        "            return [first, *checked, await ship(order), await notify(order)]"
    )
    code, message = resume_with(order, variant(patched))
    assert code == 0, message  # ...guarded by patched(), it finishes on the old path
    assert attempts(log, "fraud_check") == 0
    fresh = cli("start", f"{order}:OrderWorkflow", "--arg", "order=B2", "--run-id", "new")
    assert fresh.stdout == '["charged 100","clean","shipped","notified"]\n'
    marker = cli("history", "new")
    assert "MarkerRecorded" in marker.stdout
    assert "fraud-check" in marker.stdout
    assert cli("replay", "new").exit_code == 0


def test_a_renamed_workflow_is_non_determinism(order: Path) -> None:
    crashed_after(order, completed=1)
    code, message = resume_with(
        order, ORDER_V1.replace('define(name="order")', 'define(name="purchase")')
    )
    assert code == 3
    assert "is a run of workflow 'order'" in message
    assert "now defines 'purchase'" in message
