"""The Python API: what `import wfrun as workflows` offers, and how its decorators are used."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

import wfrun as workflows
from wfrun.local.store import RunStore

from conftest import attempts
from flows.steps import GreeterWorkflow, StepsWorkflow


def test_the_public_api_is_exactly_this() -> None:
    assert sorted(workflows.__all__) == sorted(
        [
            "ActivityError",
            "ActivityInfo",
            "ApplicationError",
            "DefinitionError",
            "DeterminismWarning",
            "EncodingError",
            "ExtraItemParams",
            "GetItemFromIndexParams",
            "HistoryCorruptError",
            "HistoryIOError",
            "InputError",
            "InteractiveWorkflow",
            "NonDeterminismError",
            "PayloadTooLargeError",
            "RateLimit",
            "RetryPolicy",
            "RunLockedError",
            "RunNotFoundError",
            "SignalSent",
            "TargetError",
            "UsageError",
            "WfrunError",
            "WorkflowError",
            "WorkflowFailedError",
            "WorkflowInfo",
            "__version__",
            "activity",
            "activity_heartbeat",
            "activity_info",
            "cancel_workflow",
            "execute_activities_in_parallel",
            "execute_workflow",
            "query_workflow",
            "resume_workflow",
            "signal_workflow",
            "update_workflow",
            "workflow",
        ]
    )
    for name in workflows.__all__:
        assert hasattr(workflows, name), name


def test_the_workflow_namespace_offers_mistral_s_helpers() -> None:
    for name in (
        "define",
        "entrypoint",
        "now",
        "random",
        "uuid4",
        "sleep",
        "wait_condition",
        "info",
        "logger",
        "patched",
        "wait",
        "as_completed",
        "signal",
        "query",
        "update",
        "get_execution_id",
        "execute_activities_in_parallel",
    ):
        assert callable(getattr(workflows.workflow, name)) or name == "logger", name
    assert callable(workflows.workflow.unsafe.imports_passed_through)


def test_every_error_has_one_root() -> None:
    errors = [getattr(workflows, n) for n in workflows.__all__ if n.endswith("Error")]
    assert all(issubclass(e, workflows.WfrunError) for e in errors)
    assert issubclass(workflows.WorkflowError, workflows.ApplicationError)


def test_importing_wfrun_does_not_import_the_cli_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, wfrun; "
        "print(sorted(m for m in ('typer', 'rich', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- definitions -----------------------------------------------------------------------------


@workflows.activity
async def bare() -> int:
    return 1


@workflows.activity(name="custom")
async def configured() -> int:
    return 2


def test_activity_works_with_and_without_parentheses() -> None:
    assert asyncio.run(bare()) == 1
    assert asyncio.run(configured()) == 2


class Service:
    async def call(self) -> None: ...


def test_activity_refuses_a_method() -> None:
    with pytest.raises(workflows.DefinitionError, match="module-level function, not the method"):
        workflows.activity(Service.call)


def test_activity_refuses_a_nested_function() -> None:
    async def inner() -> None: ...

    with pytest.raises(workflows.DefinitionError, match="defined inside a function"):
        workflows.activity(inner)


def test_activity_refuses_a_class() -> None:
    with pytest.raises(workflows.DefinitionError, match="not the class"):
        workflows.activity(type("Thing", (), {}))


def test_activity_refuses_bad_retry_settings() -> None:
    with pytest.raises(workflows.DefinitionError, match="max_attempts"):
        workflows.activity(retry_policy_max_attempts=-1)(_module_level)
    with pytest.raises(workflows.DefinitionError, match="sequence of class names"):
        workflows.activity(retry_policy_non_retryable_errors="ValueError")(_module_level)


async def _module_level() -> None: ...


def test_define_needs_exactly_one_entrypoint() -> None:
    with pytest.raises(workflows.DefinitionError, match=r"has no @workflows\.workflow\.entrypoint"):

        @workflows.workflow.define
        class Nothing:
            async def run(self) -> None: ...

    with pytest.raises(workflows.DefinitionError, match="more than one"):

        @workflows.workflow.define
        class Two:
            @workflows.workflow.entrypoint
            async def a(self) -> None: ...

            @workflows.workflow.entrypoint
            async def b(self) -> None: ...


def test_define_takes_execution_timeout_as_a_timedelta_or_seconds() -> None:
    @workflows.workflow.define(execution_timeout=90)
    class InSeconds:
        @workflows.workflow.entrypoint
        async def run(self) -> None: ...

    definition = InSeconds.__wfrun_workflow__  # type: ignore[attr-defined]
    assert definition.execution_timeout == timedelta(seconds=90)


def test_define_refuses_an_execution_timeout_that_is_no_duration() -> None:
    with pytest.raises(workflows.DefinitionError, match="timedelta or a number of seconds"):

        @workflows.workflow.define(execution_timeout="90")  # type: ignore[arg-type]
        class Text:
            @workflows.workflow.entrypoint
            async def run(self) -> None: ...

    with pytest.raises(workflows.DefinitionError, match="must be positive"):

        @workflows.workflow.define(execution_timeout=-1)
        class Negative:
            @workflows.workflow.entrypoint
            async def run(self) -> None: ...


def test_the_entrypoint_must_be_async() -> None:
    with pytest.raises(workflows.DefinitionError, match="needs an async method"):
        workflows.workflow.entrypoint(lambda self: None)


def test_workflow_helpers_outside_a_workflow_say_where_they_belong() -> None:
    with pytest.raises(workflows.UsageError, match="can only be called from workflow code"):
        workflows.workflow.now()
    with pytest.raises(workflows.UsageError, match="inside an activity"):
        workflows.activity_info()


# -- running from Python ---------------------------------------------------------------------


def test_execute_workflow_returns_the_typed_result(log: Path) -> None:
    assert asyncio.run(workflows.execute_workflow(StepsWorkflow, {"count": 2})) == [10, 20]


def test_execute_workflow_validates_params_before_creating_a_run(home: Path) -> None:
    with pytest.raises(workflows.InputError, match="count: Input should be a valid integer"):
        asyncio.run(workflows.execute_workflow(StepsWorkflow, {"count": "many"}))
    with pytest.raises(workflows.InputError, match="no parameter 'colour'"):
        asyncio.run(workflows.execute_workflow(GreeterWorkflow, {"name": "a", "colour": 1}))
    assert not (home / "runs").exists()


def test_many_runs_can_be_in_flight_in_one_process_at_once(log: Path) -> None:
    async def main() -> list[object]:
        return await asyncio.gather(
            *(
                workflows.execute_workflow(
                    StepsWorkflow, {"count": 3, "delay": 0.05}, execution_id=f"r{i}"
                )
                for i in range(20)
            )
        )

    assert asyncio.run(main()) == [[10, 20, 30]] * 20
    assert attempts(log, "step1") == 20
    assert len(RunStore().list_runs()) == 20


def test_resume_workflow_continues_an_interrupted_run(log: Path) -> None:
    from conftest import cut_history

    asyncio.run(workflows.execute_workflow(StepsWorkflow, {"count": 3}, execution_id="r"))
    cut_history("r", keep=4)
    assert asyncio.run(workflows.resume_workflow("r")) == [10, 20, 30]
    assert attempts(log, "step1") == 1


def test_a_failed_run_raises_workflow_failed_error_with_the_cause() -> None:
    from flows.steps import ExhaustedWorkflow

    with pytest.raises(workflows.WorkflowFailedError) as failed:
        asyncio.run(workflows.execute_workflow(ExhaustedWorkflow, execution_id="x"))
    assert failed.value.run_id == "x"
    assert isinstance(failed.value.__cause__, workflows.ApplicationError)
    assert failed.value.__cause__.type == "ActivityError"


class Greeting(BaseModel):
    name: str = "World"
    punctuation: str = "!"


@workflows.workflow.define
class ModelInputWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, params: Greeting) -> str:
        return f"Hello, {params.name}{params.punctuation}"


def test_a_single_model_entrypoint_takes_the_model_or_its_fields() -> None:
    run = workflows.execute_workflow
    assert asyncio.run(run(ModelInputWorkflow, Greeting(name="Ada"))) == "Hello, Ada!"
    assert asyncio.run(run(ModelInputWorkflow, {"name": "Bo"})) == "Hello, Bo!"
    assert asyncio.run(run(ModelInputWorkflow)) == "Hello, World!"
