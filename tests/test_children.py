"""Child workflows: runs of their own, linked both ways, carried on by their parent."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
import pytest

import wfrun as workflows

from conftest import (
    attempts,
    backdate,
    cli,
    cut_history,
    history,
    kill_after_marker,
    run_wfrun,
    spawn_wfrun,
    wait_for_marker,
    wait_until,
    wf,
    write_module,
)

FAMILY = wf("family")


def types(home: Path, run_id: str) -> list[str]:
    return [e["type"] for e in history(home, run_id)]


def started(home: Path, run_id: str) -> dict:
    return history(home, run_id)[0]


def child_ids(home: Path, run_id: str) -> list[str]:
    return [e["run_id"] for e in history(home, run_id) if e["type"] == "ChildWorkflowStarted"]


def test_each_child_is_a_run_of_its_own_with_its_own_history(home: Path) -> None:
    result = cli("start", f"{FAMILY}:FanOut", "--input", '{"items": ["a", "b"]}', "--run-id", "p")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == ["a packed", "b packed"]
    assert child_ids(home, "p") == ["p-child-1", "p-child-2"]
    for child, item in zip(child_ids(home, "p"), "ab", strict=True):
        assert types(home, child)[-1] == "WorkflowCompleted"
        assert started(home, child)["input"] == {"item": item}


def test_parent_and_child_name_each_other(home: Path) -> None:
    cli("start", f"{FAMILY}:FanOut", "--input", '{"items": ["a"]}', "--run-id", "p")
    parent = orjson.loads(cli("show", "p", "--json").stdout)
    child = orjson.loads(cli("show", "p-child-1", "--json").stdout)
    assert parent["children"] == ["p-child-1"]
    assert child["parent"] == "p"
    assert "run p-child-1" in cli("history", "p").stdout
    assert "child of p" in cli("history", "p-child-1").stdout
    listed = {run["run_id"]: run for run in orjson.loads(cli("list", "--json").stdout)}
    assert listed["p-child-1"]["parent"] == "p"


def test_the_parent_records_the_child_start_and_end(home: Path) -> None:
    cli("start", f"{FAMILY}:FanOut", "--input", '{"items": ["a"]}', "--run-id", "p")
    events = history(home, "p")
    assert [e["type"] for e in events[1:]] == [
        "ChildWorkflowStarted",
        "ChildWorkflowCompleted",
        "WorkflowCompleted",
    ]
    assert (events[1]["workflow"], events[1]["run_id"]) == ("pack_item", "p-child-1")
    assert (events[2]["run_id"], events[2]["result"]) == ("p-child-1", "a packed")


def test_the_top_level_execute_workflow_in_workflow_code_starts_a_child(
    home: Path, log: Path
) -> None:
    result = cli("start", f"{FAMILY}:TopLevelCall", "--arg", "item=vase", "--run-id", "t")
    assert orjson.loads(result.stdout) == "vase packed (fragile)"
    assert child_ids(home, "t") == ["t-child-1"]
    assert started(home, "t-child-1")["input"] == {"item": "vase", "fragile": True}
    assert attempts(log, "pack") == 1


def test_an_execution_id_names_the_child_run(home: Path) -> None:
    cli("start", f"{FAMILY}:NamedChild", "--arg", "item=x", "--run-id", "n")
    assert child_ids(home, "n") == ["pack-x"]
    assert started(home, "pack-x")["parent"] == "n"


def test_a_childs_failure_reaches_the_parent_as_workflow_failed_error(home: Path) -> None:
    result = cli("start", f"{FAMILY}:CarefulParent", "--arg", "item=piano", "--run-id", "c")
    assert orjson.loads(result.stdout) == "child failed: piano does not fit"
    [failed] = [e for e in history(home, "c") if e["type"] == "ChildWorkflowFailed"]
    assert (failed["run_id"], failed["status"]) == ("c-child-1", "FAILED")


def test_a_child_failure_nobody_catches_fails_the_parent(home: Path) -> None:
    result = cli("start", f"{FAMILY}:FailingParent", "--arg", "item=piano", "--run-id", "f")
    assert result.exit_code == 1
    assert types(home, "f")[-1] == "WorkflowFailed"
    assert "piano does not fit" in result.stderr


def test_replay_of_a_parent_runs_and_writes_nothing(home: Path, log: Path) -> None:
    cli("start", f"{FAMILY}:FanOut", "--input", '{"items": ["a", "b"]}', "--run-id", "p")
    files = {path: path.read_bytes() for path in (home / "runs").iterdir()}
    replayed = cli("replay", "p")
    assert replayed.exit_code == 0, replayed.output
    assert attempts(log, "pack") == 2
    assert {path: path.read_bytes() for path in (home / "runs").iterdir()} == files


def test_on_resume_a_finished_child_is_not_run_again_and_an_unfinished_one_goes_on(
    home: Path, log: Path
) -> None:
    marker = home.parent / "held"
    process = spawn_wfrun(
        "start", f"{FAMILY}:SlowParent", "--arg", f"marker={marker}", "--run-id", "s"
    )
    kill_after_marker(process, log, "hold")  # the second child is in its activity
    resumed = run_wfrun("resume", "s")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == "first packed, slow packed"
    assert attempts(log, "pack") == 2  # "first" once (its child had ended), "slow" once
    assert attempts(log, "hold") == 2  # the attempt the kill cut off ran again
    assert child_ids(home, "s") == ["s-child-1", "s-child-2"]  # the same two children
    assert types(home, "s-child-2").count("RunResumed") == 1


def test_cancelling_the_parent_cancels_its_children(home: Path, log: Path) -> None:
    marker = home.parent / "held"
    process = spawn_wfrun(
        "start", f"{FAMILY}:SlowParent", "--arg", f"marker={marker}", "--run-id", "s"
    )
    try:
        wait_for_marker(process, log, "hold")  # the second child is in its activity
        cancelled = run_wfrun("cancel", "s", "--reason", "customer left")
        assert cancelled.returncode == 0, cancelled.stderr
        assert process.wait(timeout=60) == 1
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
    assert types(home, "s")[-1] == "WorkflowCanceled"
    assert types(home, "s-child-2")[-1] == "WorkflowCanceled"
    assert "ChildWorkflowCancelRequested" in types(home, "s")
    assert attempts(log, "undo") == 1  # the child cleaned up


def test_a_waiting_child_makes_its_parent_wait(home: Path) -> None:
    result = cli("start", f"{FAMILY}:ApproveParent", "--arg", "item=x", "--run-id", "a")
    assert result.exit_code == 75, result.output
    assert types(home, "a")[-1] == "RunWaiting"
    assert types(home, "approve-x")[-1] == "RunWaiting"
    assert "child run approve-x waits" in history(home, "a")[-1]["reason"]


def test_a_signal_to_a_waiting_child_carries_child_and_parent_on(home: Path) -> None:
    cli("start", f"{FAMILY}:ApproveParent", "--arg", "item=x", "--run-id", "a")
    sent = cli("signal", "approve-x", "approve", '{"approver": "ada"}')
    assert sent.exit_code == 0, sent.output
    assert types(home, "approve-x")[-1] == "WorkflowCompleted"
    assert types(home, "a")[-1] == "WorkflowCompleted"
    assert history(home, "a")[-1]["result"] == "parent saw: x approved by ada"


def test_resume_all_carries_a_child_on_through_its_parent(home: Path) -> None:
    cli("start", f"{FAMILY}:ApproveParent", "--arg", "item=x", "--run-id", "a")
    cli("signal", "approve-x", "approve", '{"approver": "ada"}', "--no-resume")
    resumed = run_wfrun("resume", "--all", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert [report["run_id"] for report in orjson.loads(resumed.stdout)] == ["a"]
    assert types(home, "a")[-1] == "WorkflowCompleted"


def test_a_child_that_ends_on_its_own_wakes_its_parent(home: Path) -> None:
    cli("start", f"{FAMILY}:ApproveParent", "--arg", "item=x", "--run-id", "a")
    cli("signal", "approve-x", "approve", '{"approver": "ada"}', "--no-resume")
    alone = cli("resume", "approve-x")
    assert alone.exit_code == 0, alone.output
    listed = {run["run_id"]: run for run in orjson.loads(cli("list", "--json").stdout)}
    assert listed["a"]["messages"] is True
    assert [r["run_id"] for r in orjson.loads(run_wfrun("resume", "--all", "--json").stdout)] == [
        "a"
    ]
    assert history(home, "a")[-1]["result"] == "parent saw: x approved by ada"


def test_a_bad_execution_id_fails_the_call_and_records_nothing(home: Path) -> None:
    result = cli("start", f"{FAMILY}:BadChildId", "--run-id", "b")
    assert result.exit_code == 0, result.output
    assert "no valid run id" in orjson.loads(result.stdout)
    assert "ChildWorkflowStarted" not in types(home, "b")


def test_children_from_python_run_in_the_same_process(home: Path) -> None:
    from flows.family import FanOut

    result = asyncio.run(
        workflows.execute_workflow(FanOut, {"items": ["x", "y"]}, execution_id="q")
    )
    assert result == ["x packed", "y packed"]
    assert child_ids(home, "q") == ["q-child-1", "q-child-2"]


def test_a_parent_whose_code_asks_for_another_child_does_not_replay(home: Path) -> None:
    from wfrun.testing import replay

    from flows.family import FanOutOther

    cli("start", f"{FAMILY}:FanOut", "--input", '{"items": ["a"]}', "--run-id", "p")
    with pytest.raises(workflows.NonDeterminismError, match="child workflow 'pack_item'"):
        replay(home / "runs" / "p.jsonl", FanOutOther)


# -- review: crashes, races and cancellations around children ----------------------------------


def test_a_crash_before_the_child_file_was_created_starts_the_child_on_resume(
    home: Path, log: Path
) -> None:
    # What a kill -9 leaves between the parent's ChildWorkflowStarted and the child's creation.
    cli("start", f"{FAMILY}:FanOut", "--input", '{"items": ["a"]}', "--run-id", "p")
    cut_history("p", 2)
    (home / "runs" / "p-child-1.jsonl").unlink()
    resumed = run_wfrun("resume", "p")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == ["a packed"]
    assert types(home, "p-child-1")[-1] == "WorkflowCompleted"


def test_a_child_id_taken_with_another_input_is_never_answered_on_resume(home: Path) -> None:
    first = cli("start", f"{FAMILY}:SharedChildId", "--arg", "item=a", "--run-id", "p1")
    assert orjson.loads(first.stdout) == "a packed"
    refused = run_wfrun("start", f"{FAMILY}:SharedChildId", "--arg", "item=b", "--run-id", "p2")
    assert refused.returncode == 2, refused.stderr
    resumed = run_wfrun("resume", "p2")
    assert "a packed" not in resumed.stdout  # never the other run's result
    assert resumed.returncode == 2, resumed.stderr
    assert "ChildWorkflowCompleted" not in types(home, "p2")


def test_a_child_id_that_is_another_parents_child_is_refused(home: Path) -> None:
    cli("start", f"{FAMILY}:SharedChildId", "--arg", "item=a", "--run-id", "p1")
    second = run_wfrun("start", f"{FAMILY}:SharedChildId", "--arg", "item=a", "--run-id", "p2")
    assert second.returncode == 2, second.stdout
    assert "p1" in second.stderr  # names the parent the run belongs to
    assert started(home, "shared")["parent"] == "p1"


def test_a_parent_that_ends_with_a_blocked_child_it_let_go_exits(home: Path) -> None:
    # The child is BLOCKED and asked to cancel: nothing can carry it on here, so the parent's
    # process must not wait for it to end.
    result = run_wfrun("start", f"{FAMILY}:LeavesBlockedChild", "--run-id", "p", timeout=30)
    assert result.returncode == 0, result.stderr
    assert types(home, "p")[-1] == "WorkflowCompleted"
    assert "ChildWorkflowCancelRequested" in types(home, "p")
    assert types(home, "p-buggy")[-1] == "RunBlocked"


def test_cancelling_a_parent_cancels_its_child_that_continued_as_new(home: Path) -> None:
    waiting = cli("start", f"{FAMILY}:ChainedParent", "--run-id", "p")
    assert waiting.exit_code == 75, waiting.output
    last = history(home, "chained")[-1]
    assert last["type"] == "WorkflowContinuedAsNew"
    successor = last["run_id"]
    assert types(home, successor)[-1] == "RunWaiting"
    cancelled = cli("cancel", "p")
    assert cancelled.exit_code == 1, cancelled.output
    assert types(home, "p")[-1] == "WorkflowCanceled"
    assert types(home, successor)[-1] == "WorkflowCanceled"


def test_a_child_ended_by_another_process_reaches_its_live_parent(home: Path, log: Path) -> None:
    from wfrun.local.backend import LocalBackend
    from wfrun.local.store import RunStore

    release = home.parent / "release"
    process = spawn_wfrun("start", f"{FAMILY}:GatedParent", "--arg", f"release={release}")
    try:
        store = RunStore(home)

        def child_stopped() -> bool:  # the live parent polls it, waiting for input
            path = home / "runs" / "asker.jsonl"
            return (
                attempts(log, "gate") == 1
                and path.exists()
                and b'"RunWaiting"' in path.read_bytes()
                and not store.is_locked("asker")
            )

        wait_until(process, child_stopped, "the child waiting for its input")
        # Another process (here: this one) carries the child to its end, with a person at hand.
        ended = asyncio.run(LocalBackend(home).resume("asker", ask=lambda label, s: {"ok": True}))
        assert str(ended.status) == "COMPLETED"
        release.touch()
        assert process.wait(timeout=60) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert orjson.loads(process.stdout.read()) == "child said True"


FAMILY_WITH_A_TYPO = """
    import wfrun as workflows


    @workflows.workflow.define(name="kid")
    class Kid:
        @workflows.workflow.entrypoint
        async def run(self, key: str) -> str:
            return {VALUE}


    @workflows.workflow.define(name="folks")
    class Folks:
        @workflows.workflow.entrypoint
        async def run(self, key: str) -> str:
            kid = await workflows.workflow.execute_workflow(Kid, {"key": key})
            return f"kid said {kid}"
"""


def test_a_parent_waiting_only_for_a_blocked_child_is_blocked_with_exit_3(
    isolated: Path, home: Path
) -> None:
    buggy = FAMILY_WITH_A_TYPO.replace("{VALUE}", '{"key": key}["kee"]')
    module = write_module(isolated / "folks.py", buggy)
    result = cli("start", f"{module}:Folks", "--arg", "key=k", "--run-id", "f")
    assert result.exit_code == 3, result.output
    assert "child run f-child-1 is BLOCKED" in result.stderr
    assert "KeyError" in result.stderr
    assert types(home, "f")[-1] == "RunBlocked"
    assert types(home, "f-child-1")[-1] == "RunBlocked"
    # Nothing to retry until the code changes; then resume --all carries both on.
    assert orjson.loads(run_wfrun("resume", "--all", "--json").stdout) == []
    write_module(module, FAMILY_WITH_A_TYPO.replace("{VALUE}", "key.upper()"))
    resumed = orjson.loads(run_wfrun("resume", "--all", "--json").stdout)
    assert [(r["run_id"], r["result"]) for r in resumed] == [("f", "kid said K")]


KID_WITH_A_TYPO = """
    import wfrun as workflows


    @workflows.workflow.define(name="kid")
    class Kid:
        @workflows.workflow.entrypoint
        async def run(self, key: str) -> str:
            return {VALUE}
"""
FOLKS_OF_ANOTHER_MODULE = """
    import wfrun as workflows

    from kid import Kid


    @workflows.workflow.define(name="folks")
    class Folks:
        @workflows.workflow.entrypoint
        async def run(self, key: str) -> str:
            kid = await workflows.workflow.execute_workflow(Kid, {"key": key})
            return f"kid said {kid}"
"""


def test_a_parent_blocked_by_a_child_resumed_on_its_own_goes_on_with_resume_all(
    isolated: Path, home: Path
) -> None:
    kid = write_module(isolated / "kid.py", KID_WITH_A_TYPO.replace("{VALUE}", '{"k": 1}["x"]'))
    folks = write_module(isolated / "folks.py", FOLKS_OF_ANOTHER_MODULE)
    blocked = run_wfrun("start", f"{folks}:Folks", "--arg", "key=k", "--run-id", "f")
    assert blocked.returncode == 3, blocked.stderr
    # The child's module is fixed and the child resumed by its own id (the message names it).
    write_module(kid, KID_WITH_A_TYPO.replace("{VALUE}", "key.upper()"))
    child = run_wfrun("resume", "f-child-1", "--json")
    assert child.returncode == 0, child.stderr
    # Its parent's own module did not change, but what blocked it is gone: resume --all
    # carries it on (else it stays BLOCKED for good, on a child that completed).
    resumed = orjson.loads(run_wfrun("resume", "--all", "--json").stdout)
    assert [(r["run_id"], r["result"]) for r in resumed] == [("f", "kid said K")]


FOLKS_WITH_A_TIMER = """
    import asyncio
    import os

    import wfrun as workflows


    @workflows.activity
    async def after_the_timer(key: str) -> str:
        with open(os.path.join(os.environ["WFRUN_TEST_LOG"], "after_the_timer.log"), "a") as f:
            f.write("x\\n")
        return key


    @workflows.workflow.define(name="kid")
    class Kid:
        @workflows.workflow.entrypoint
        async def run(self, key: str) -> str:
            return {"k": 1}["x"]


    @workflows.workflow.define(name="folks")
    class Folks:
        @workflows.workflow.entrypoint
        async def run(self, key: str) -> str:
            async def later() -> str:
                await workflows.workflow.sleep(600)
                return await after_the_timer(key)

            kid, late = await asyncio.gather(
                workflows.workflow.execute_workflow(Kid, {"key": key}), later()
            )
            return f"{kid} {late}"
"""


def test_a_parent_with_a_timer_of_its_own_is_not_blocked_by_a_blocked_child(
    isolated: Path, home: Path, log: Path
) -> None:
    module = write_module(isolated / "folks.py", FOLKS_WITH_A_TIMER)
    started_run = run_wfrun("start", f"{module}:Folks", "--arg", "key=k", "--run-id", "f")
    assert types(home, "f-child-1")[-1] == "RunBlocked"
    # The parent can still move on its own: once its timer is due, resume --all carries it on.
    assert started_run.returncode == 75, started_run.stderr
    backdate("f", 3600)
    run_wfrun("resume", "--all")
    assert attempts(log, "after_the_timer") == 1
    assert types(home, "f")[-1] == "RunBlocked"  # then only the blocked child is left
