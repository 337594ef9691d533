"""A replayed result whose return annotation today's code can no longer resolve (a name in it
is gone): a NonDeterminismError outside the workflow code, never an error the code catches."""

from __future__ import annotations

import pytest

import wfrun as workflows
from wfrun.errors import NonDeterminismError
from wfrun.testing import replay

from conftest import as_workflow, run_live


@workflows.activity(name="r8_answer")
async def answer_v1() -> int:
    return 42


@workflows.activity(name="r8_answer")
async def answer_v2() -> NoSuchType:  # type: ignore[name-defined]  # noqa: F821
    return 42


@workflows.workflow.define(name="r8_answer_v1")
class AnswerV1:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            return str(await answer_v1())
        except Exception as exc:
            return f"caught {type(exc).__name__}"


#: What the workflow code caught: an error about today's code is never the code's to catch.
caught: list[str] = []


@workflows.workflow.define(name="r8_answer_v2")
class AnswerV2:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:  # the code catches every error: only a NonDeterminismError outside it tells
            return str(await answer_v2())
        except Exception as exc:
            caught.append(repr(exc))
            return f"caught {type(exc).__name__}"


@workflows.workflow.define(name="r8_answer_v2_stored")
class AnswerV2Stored:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        try:
            call = answer_v2()  # the ordinary path: not awaited where it is made
            return str(await call)
        except Exception as exc:
            caught.append(repr(exc))
            return f"caught {type(exc).__name__}"


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("workflow", [AnswerV2Stored, AnswerV2], ids=["ordinary", "fast"])
def test_a_return_annotation_that_no_longer_resolves_is_reported_on_replay(
    workflow: type,
) -> None:
    """The error about today's annotation is the replay's, not the workflow code's: on the
    fast path (a call awaited where it is made) and the ordinary one alike."""
    path = run_live(AnswerV1, "answer")
    as_workflow(path, workflow.__wfrun_workflow__.name)
    caught.clear()
    with pytest.raises(Exception):  # noqa: B017,PT011  (which one: see the next test)
        replay(path, workflow)
    assert caught == []  # the workflow code never saw the error


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("workflow", [AnswerV2Stored, AnswerV2], ids=["ordinary", "fast"])
def test_a_return_annotation_that_no_longer_resolves_is_a_nondeterminism_error(
    workflow: type,
) -> None:
    """It is reported as the code having changed under the run, even though the annotation
    cannot be printed as it is today."""
    path = run_live(AnswerV1, "answer2")
    as_workflow(path, workflow.__wfrun_workflow__.name)
    with pytest.raises(NonDeterminismError):
        replay(path, workflow)
