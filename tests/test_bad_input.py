"""Bad input of any kind is refused before anything runs: exit 2, a message naming it, no run."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import attempts, cli, wf

STEPS = f"{wf('steps')}:StepsWorkflow"
GREETER = f"{wf('steps')}:GreeterWorkflow"


def no_runs(home: Path) -> bool:
    runs = home / "runs"
    return not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("run_id", ["", "-rf", ".hidden", "a/b", "a..b", "x" * 129])
def test_a_malformed_run_id_is_refused_never_replaced(home: Path, run_id: str) -> None:
    result = cli("start", STEPS, "--arg", "count=1", f"--run-id={run_id}")
    assert result.exit_code == 2, result.output
    assert "invalid run id" in result.stderr
    assert no_runs(home)


def test_a_run_id_of_another_workflow_is_refused_naming_it(log: Path) -> None:
    assert cli("start", STEPS, "--arg", "count=1", "--run-id", "taken").exit_code == 0
    result = cli("start", GREETER, "--arg", "name=Ada", "--run-id", "taken")
    assert result.exit_code == 2, result.output
    assert "exists for workflow 'steps'" in result.stderr
    assert result.stdout == ""  # never the other run's result


def test_a_run_id_with_another_input_is_refused_naming_it(log: Path) -> None:
    assert cli("start", STEPS, "--arg", "count=1", "--run-id", "taken").exit_code == 0
    result = cli("start", STEPS, "--arg", "count=2", "--run-id", "taken")
    assert result.exit_code == 2, result.output
    assert '{"count":1' in result.stderr
    assert '{"count":2' in result.stderr
    assert attempts(log, "step2") == 0


def test_the_same_run_id_and_input_still_returns_the_recorded_result(log: Path) -> None:
    assert cli("start", STEPS, "--arg", "count=1", "--run-id", "same").exit_code == 0
    again = cli("start", STEPS, "--arg", "count=1", "--run-id", "same")
    assert again.exit_code == 0
    assert again.stdout.strip() == "[10]"
    assert attempts(log, "step1") == 1


@pytest.mark.parametrize("size", ["inf", "1e400", "nan", "-1", "lots"])
def test_an_impossible_payload_limit_is_refused(home: Path, size: str) -> None:
    result = cli("start", STEPS, "--arg", "count=1", "--max-payload", size)
    assert result.exit_code == 2, result.output
    assert "payload limit" in result.stderr
    assert no_runs(home)


def test_an_argument_given_twice_is_refused(home: Path) -> None:
    result = cli("start", STEPS, "--arg", "count=1", "--arg", "count=2")
    assert result.exit_code == 2, result.output
    assert "--arg count is given twice" in result.stderr
    assert no_runs(home)
