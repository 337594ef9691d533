"""Guard rails and the replay-safe logger."""

from __future__ import annotations

import asyncio
import cProfile
import logging
import pstats
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import wfrun as workflows
from wfrun.local import guard

from conftest import FLOWS, cut_history
from flows.impure import ChattyWorkflow, ImpureWorkflow, QuietImpureWorkflow

SOURCE = (FLOWS / "impure.py").read_text().splitlines()


def line_of(marker: str) -> int:
    return next(n for n, text in enumerate(SOURCE, start=1) if marker in text)


@pytest.fixture(autouse=True)
def _fresh_guard() -> Iterator[None]:
    guard._reported.clear()  # each line is reported once per process: start clean
    yield
    guard._reported.clear()


def run(workflow: type, params: object = None) -> object:
    return asyncio.run(workflows.execute_workflow(workflow, params))


def test_each_nondeterministic_call_is_reported_with_its_line_and_replacement() -> None:
    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(ImpureWorkflow)
    messages = [str(w.message) for w in caught]
    expected = {
        "time.time": "workflows.workflow.now()",
        "datetime.now": "workflows.workflow.now()",
        "random.random": "workflows.workflow.random().random()",
        "uuid.uuid4": "workflows.workflow.uuid4()",
        "random.choice": "workflows.workflow.random().choice()",
    }
    for call, replacement in expected.items():
        where = f"impure.py:{line_of(f'IMPURE {call}')}"
        assert any(f"calls {call}()" in m and where in m and replacement in m for m in messages), (
            call
        )
    assert not any(f"impure.py:{line_of('PURE: the run')}" in m for m in messages)


def test_a_call_under_another_name_is_reported_as_the_function_it_is() -> None:
    from flows.impure import AliasedImpureWorkflow

    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(AliasedImpureWorkflow)
    messages = [str(w.message) for w in caught]
    for call, marker in (
        ("time.time", "aliased time.time"),
        ("datetime.now", "aliased datetime.now"),
    ):
        where = f"impure.py:{line_of(f'IMPURE {marker}')}"
        assert any(f"calls {call}()" in m and where in m for m in messages), call


def test_asyncio_sleep_is_a_durable_timer_and_draws_no_warning() -> None:
    """README: asyncio.sleep inside a workflow is recorded as a durable timer, so it is safe."""
    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(ImpureWorkflow)
    assert not [w for w in caught if "asyncio.sleep" in str(w.message)]


def test_as_completed_over_own_coroutines_points_to_the_deterministic_helper() -> None:
    from flows.impure import UnorderedWorkflow

    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(UnorderedWorkflow)
    [message] = [str(w.message) for w in caught]
    assert f"impure.py:{line_of('IMPURE order')}" in message
    assert "workflows.workflow.as_completed()" in message


def test_each_line_is_reported_once() -> None:
    def twice() -> None:
        run(ImpureWorkflow)
        run(ImpureWorkflow)

    with pytest.warns(workflows.DeterminismWarning) as caught:
        twice()
    assert len(caught) == 5


def test_a_workflow_can_opt_out_of_the_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", workflows.DeterminismWarning)
        run(QuietImpureWorkflow)


def test_the_guard_steps_aside_for_a_profiler_the_user_runs() -> None:
    profiler = cProfile.Profile()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profiler.runcall(run, ImpureWorkflow)
    # The profiler kept its hook through the workflow's steps: it saw the workflow code run,
    # down to the time.time() call that the guard would have reported...
    stats = pstats.Stats(profiler).stats
    time_callers = {
        (Path(file).name, caller)
        for (_, _, name), (*_, callers) in stats.items()
        if name.endswith(" time.time>")
        for file, _, caller in callers
    }
    assert ("impure.py", "impure_body") in time_callers
    # ...and the guard, standing aside, reported nothing.
    assert [str(w.message) for w in caught if w.category is workflows.DeterminismWarning] == []


def test_the_workflow_logger_does_not_repeat_lines_on_replay(
    caplog: pytest.LogCaptureFixture, log: Path
) -> None:
    asyncio.run(workflows.execute_workflow(ChattyWorkflow, {"count": 3}, execution_id="c"))
    cut_history("c", keep=4)  # step 1 is done: its line was logged before the "crash"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wfrun.workflow"):
        asyncio.run(workflows.resume_workflow("c"))
    assert [r.getMessage() for r in caplog.records] == ["finished step 2", "finished step 3"]
    assert {r.run_id for r in caplog.records} == {"c"}  # type: ignore[attr-defined]


def test_a_new_run_logs_from_its_very_first_line(caplog: pytest.LogCaptureFixture) -> None:
    from flows.impure import EagerLoggerWorkflow

    with caplog.at_level(logging.INFO, logger="wfrun.workflow"):
        run(EagerLoggerWorkflow)
    assert [r.getMessage() for r in caplog.records] == ["starting", "done"]


def test_a_resume_replays_without_the_guard_and_wfrun_replay_with_it(log: Path) -> None:
    from conftest import cli

    with pytest.warns(workflows.DeterminismWarning):
        asyncio.run(workflows.execute_workflow(ImpureWorkflow, execution_id="i"))
    guard._reported.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", workflows.DeterminismWarning)
        cut_history("i", keep=2)  # resume: the replayed part is not watched again...
        with pytest.warns(workflows.DeterminismWarning):  # ...but what runs live is
            asyncio.run(workflows.resume_workflow("i"))
    guard._reported.clear()
    with pytest.warns(workflows.DeterminismWarning):
        assert cli("replay", "i").exit_code == 0


def test_a_call_site_first_seen_harmless_is_reported_when_it_calls_a_watched_function() -> None:
    from flows.impure import LateImpureWorkflow

    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(LateImpureWorkflow)
    [message] = [str(w.message) for w in caught]
    assert "calls time.time()" in message
    assert f"impure.py:{line_of('IMPURE late time.time')}" in message


def test_a_second_run_in_the_same_process_is_watched_as_the_first() -> None:
    with pytest.warns(workflows.DeterminismWarning):
        run(ImpureWorkflow)
    guard.forget()  # as a fresh process: every line may be reported again...
    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(ImpureWorkflow)
    assert len(caught) == 5  # ...and is: the first run left no call site unwatched


def test_two_workflows_running_together_are_each_watched_by_their_own_guard() -> None:
    async def both() -> None:
        await asyncio.gather(
            workflows.execute_workflow(QuietImpureWorkflow),
            workflows.execute_workflow(ImpureWorkflow),
            workflows.execute_workflow(QuietImpureWorkflow),
        )

    guard.forget()
    with pytest.warns(workflows.DeterminismWarning):
        asyncio.run(both())
    assert len(guard.seen("impure")) == 5
    assert guard.seen("impure_quiet") == []


def test_an_activity_calling_the_clock_is_not_reported() -> None:
    from flows.impure import ActivityClockWorkflow

    with warnings.catch_warnings():
        warnings.simplefilter("error", workflows.DeterminismWarning)
        run(ActivityClockWorkflow)


def test_a_helper_run_by_an_activity_first_is_watched_when_workflow_code_calls_it() -> None:
    from flows.impure import SharedHelperWorkflow

    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(SharedHelperWorkflow)
    [message] = [str(w.message) for w in caught]
    assert f"impure.py:{line_of('IMPURE shared time.time')}" in message


def test_the_clock_read_after_an_activity_call_is_reported_live_and_on_replay(
    log: Path,
) -> None:
    from wfrun.local.store import RunStore
    from wfrun.testing import replay

    from flows.impure import AroundCallsWorkflow

    # An activity call steps out of the guard's hook while wfrun does its work, and the
    # replay of an awaited one too: the hook is back for the user's next line each time.
    lines = {line_of("IMPURE after a call"), line_of("IMPURE after an await")}
    with pytest.warns(workflows.DeterminismWarning) as live:
        asyncio.run(workflows.execute_workflow(AroundCallsWorkflow, execution_id="around"))
    assert {w.lineno for w in live} == lines
    guard.forget()
    with pytest.warns(workflows.DeterminismWarning) as replayed:
        replay(RunStore().path("around"), AroundCallsWorkflow)
    assert {w.lineno for w in replayed} == lines


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ watches with sys.monitoring")
def test_an_activity_call_in_a_watched_step_is_stepped_out_of_by_the_hook_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.impure import AroundCallsWorkflow

    # The hook steps out as the activity's wrapper starts: the wrapper asks for no hook (a
    # getprofile, and the setprofile after it, would each be events the hook runs for).
    asked: list[object] = []
    activity_module = sys.modules["wfrun.activity"]  # `wfrun.activity` is the decorator
    original = activity_module._getprofile

    def counted() -> object:
        asked.append(1)
        return original()

    monkeypatch.setattr(activity_module, "_getprofile", counted)
    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(AroundCallsWorkflow)
    assert asked == []
    assert {w.lineno for w in caught} == {  # the calls right after each are still seen
        line_of("IMPURE after a call"),
        line_of("IMPURE after an await"),
    }


def test_the_clock_read_after_tasks_were_made_in_the_step_is_reported() -> None:
    from flows.impure import AfterTasksWorkflow

    with pytest.warns(workflows.DeterminismWarning) as caught:
        run(AfterTasksWorkflow)
    assert {w.lineno for w in caught} == {line_of("IMPURE after making tasks")}


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ watches with sys.monitoring")
def test_making_a_task_in_a_watched_step_is_out_of_the_guards_sight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wfrun.local.loop import WorkflowLoop

    from flows.impure import AfterTasksWorkflow

    # Making a task runs none of the user's code (its first step is scheduled): the hook
    # is set aside meanwhile, not run for each of asyncio's and wfrun's calls in it.
    hooks: list[object] = []
    own = WorkflowLoop._own

    def recorded(loop: WorkflowLoop, task: asyncio.Task[object]) -> None:
        hooks.append(sys.getprofile())
        own(loop, task)

    monkeypatch.setattr(WorkflowLoop, "_own", recorded)
    with pytest.warns(workflows.DeterminismWarning):
        run(AfterTasksWorkflow)
    assert len(hooks) >= 3  # the entrypoint's task and one per call
    assert hooks == [None] * len(hooks)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ watches with sys.monitoring")
def test_asyncio_s_own_callbacks_run_out_of_the_guards_sight_and_the_user_s_code_after_in_it() -> (
    None
):
    from flows.impure import GatheredFutureWorkflow, _SeenFuture

    _SeenFuture.hooks.clear()
    with pytest.warns(workflows.DeterminismWarning) as caught:
        result = run(GatheredFutureWorkflow)
    assert result == [1, True]
    # gather's callback asks the future (its Python method, called from asyncio's code):
    # no hook meanwhile, and the workflow's own next line is watched again.
    assert _SeenFuture.hooks
    assert all(hook is None for hook in _SeenFuture.hooks)
    assert {w.lineno for w in caught} == {line_of("IMPURE after a gather")}
