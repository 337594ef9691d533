"""wfrun's pytest plugin: fixtures for testing your workflows, loaded by pytest on its own.

pytest finds it through the ``pytest11`` entry point of the installed package, in every
project of that environment, and imports it when it starts. It lives outside the ``wfrun``
package on purpose: importing anything inside the package imports the package first (the
engine, pydantic, a few hundred milliseconds), which a test session that never uses these
fixtures should not pay for. Each fixture imports `wfrun.testing` when it is first used.

Fixtures:
    wfrun_home: a fresh folder for runs, made ``$WFRUN_HOME`` for the test.
    wfrun_clock: a `wfrun.testing.FakeClock`: durable timers and retry delays pass at once.
    wfrun_replay: `wfrun.testing.replay`, to check today's code against a saved history.
    wfrun_run: `wfrun.testing.run_workflow` in ``wfrun_home`` on ``wfrun_clock``: a durable
        run with activities replaced by stand-ins, by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from wfrun.testing import FakeClock, ReplayResult, WorkflowRun


@pytest.fixture
def wfrun_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of the test's own for wfrun's runs, set as ``$WFRUN_HOME`` (created on the
    first run)."""
    home = tmp_path / "wfrun-home"
    monkeypatch.setenv("WFRUN_HOME", str(home))
    return home


@pytest.fixture
def wfrun_clock() -> FakeClock:
    """A fake clock: pass it as ``clock=`` and timers pass at once; ``.slept`` lists them."""
    from wfrun.testing import FakeClock

    return FakeClock()


@pytest.fixture
def wfrun_replay() -> Callable[[str | Path, type], ReplayResult]:
    """``wfrun_replay(history_file, Workflow)``: replay a saved history against today's code;
    raises `NonDeterminismError` where they differ. Runs no activity, writes nothing."""
    from wfrun.testing import replay

    return replay


@pytest.fixture
def wfrun_run(wfrun_home: Path, wfrun_clock: FakeClock) -> Callable[..., WorkflowRun]:
    """``wfrun_run(Workflow, params, activities={"name": stand_in})``: run the workflow to its
    end in ``wfrun_home`` on ``wfrun_clock``; returns a `WorkflowRun` (``.result``,
    ``.calls``, ``.calls_to(name)``, ``.run_id``)."""
    from wfrun.testing import run_workflow

    def run(
        workflow: type,
        params: Any = None,
        *,
        activities: Mapping[str, Callable[..., Any]] | None = None,
        execution_id: str | None = None,
    ) -> WorkflowRun:
        return run_workflow(
            workflow,
            params,
            activities=activities,
            clock=wfrun_clock,
            execution_id=execution_id,
            home=wfrun_home,
        )

    return run
