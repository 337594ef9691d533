"""A bug is not a verdict: only an application failure ends a run FAILED.

Any other exception from workflow code (a typo's KeyError) leaves the run BLOCKED: nothing
recorded is lost, the error and its traceback are shown, exit 3, and once the code is fixed a
resume replays and carries on. ``resume --all`` tries a BLOCKED run again only once its code
changed.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from conftest import attempts, cli, write_module

TYPO = """
    import os

    import wfrun as workflows


    @workflows.activity
    async def step(key: str) -> str:
        with open(os.path.join(os.environ["WFRUN_TEST_LOG"], "step.log"), "a") as log:
            log.write("x\\n")
        return key.upper()


    @workflows.workflow.define(name="typo")
    class Typo:
        @workflows.workflow.entrypoint
        async def run(self, key: str) -> str:
            value = await step(key)
            return {VALUE}
"""
BUGGY = TYPO.replace("{VALUE}", '{"value": value}["valeu"]')
FIXED = TYPO.replace("{VALUE}", "value")


def start_buggy(isolated: Path) -> Path:
    module = write_module(isolated / "typo.py", BUGGY)
    result = cli("start", f"{module}:Typo", "--arg", "key=k", "--run-id", "t")
    assert result.exit_code == 3, result.output
    assert "BLOCKED" in result.stderr
    assert "KeyError" in result.stderr
    assert "valeu" in result.stderr  # the traceback points at the line
    return module


def test_a_bug_in_workflow_code_blocks_the_run_with_exit_3(isolated: Path, home: Path) -> None:
    start_buggy(isolated)
    [listed] = orjson.loads(cli("list", "--json").stdout)
    assert listed["status"] == "BLOCKED"
    shown = orjson.loads(cli("show", "t", "--json").stdout)
    assert shown["status"] == "BLOCKED"
    assert "KeyError" in shown["error"]
    kinds = [orjson.loads(x)["type"] for x in (home / "runs" / "t.jsonl").read_bytes().splitlines()]
    assert kinds[-1] == "RunBlocked"
    assert "WorkflowFailed" not in kinds


def test_once_the_code_is_fixed_resume_carries_the_run_on(isolated: Path, log: Path) -> None:
    module = start_buggy(isolated)
    write_module(module, FIXED)
    result = cli("resume", "t", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["result"] == "K"
    assert attempts(log, "step") == 1  # recorded before the bug: not run again


def test_resume_all_tries_a_blocked_run_again_only_once_its_code_changed(
    isolated: Path, log: Path
) -> None:
    module = start_buggy(isolated)
    unchanged = cli("resume", "--all", "--json")
    assert orjson.loads(unchanged.stdout) == []  # the same code would raise the same bug
    write_module(module, FIXED)
    changed = cli("resume", "--all", "--json")
    [line] = orjson.loads(changed.stdout)
    assert (line["status"], line["result"]) == ("COMPLETED", "K")


def test_an_application_error_still_fails_the_run(isolated: Path) -> None:
    failing = TYPO.replace("{VALUE}", 'raise workflows.ApplicationError("no stock")')
    module = write_module(isolated / "apperr.py", failing.replace("return raise", "raise"))
    result = cli("start", f"{module}:Typo", "--arg", "key=k", "--json")
    assert result.exit_code == 1, result.output
    assert orjson.loads(result.stdout)["status"] == "FAILED"


def test_listed_exception_types_fail_the_run_too(isolated: Path) -> None:
    listed = TYPO.replace(
        'define(name="typo")', 'define(name="typo", failure_exception_types=["KeyError"])'
    )
    module = write_module(isolated / "listed.py", listed.replace("{VALUE}", '{"a": 1}["b"]'))
    result = cli("start", f"{module}:Typo", "--arg", "key=k", "--json")
    assert result.exit_code == 1, result.output
    assert orjson.loads(result.stdout)["status"] == "FAILED"
