"""The pytest plugin users get with wfrun: fixtures for their own workflow tests.

Each test here runs a user's test file in a pytest of its own (a subprocess, as a user's
would be), so that the plugin is found through its entry point, not through this suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

WORKFLOW = """
from datetime import timedelta

import wfrun as workflows


@workflows.activity
async def fetch_price(item: str) -> int:
    raise RuntimeError("the real shop was called")


@workflows.workflow.define(name="price_watch")
class PriceWatch:
    @workflows.workflow.entrypoint
    async def run(self, item: str) -> int:
        first = await fetch_price(item)
        await workflows.workflow.sleep(timedelta(days=1))
        return await fetch_price(item) - first
"""


def run_users_tests(pytester: pytest.Pytester, test_file: str) -> pytest.RunResult:
    pytester.makepyfile(shop=WORKFLOW, test_shop=textwrap.dedent(test_file))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def test_the_plugin_is_registered_under_the_pytest11_entry_point() -> None:
    [plugin] = [e for e in entry_points(group="pytest11") if e.name == "wfrun"]
    assert plugin.value == "_wfrun_pytest"


def test_loading_the_plugin_imports_neither_wfrun_nor_pydantic() -> None:
    code = (
        "import sys, _wfrun_pytest; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wfrun', 'pydantic')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_wfrun_home_is_a_fresh_folder_set_as_wfrun_home(pytester: pytest.Pytester) -> None:
    result = run_users_tests(
        pytester,
        """
        import asyncio, os
        import wfrun as workflows
        from shop import PriceWatch

        def test_runs_land_in_the_home(wfrun_home, wfrun_clock):
            assert os.environ["WFRUN_HOME"] == str(wfrun_home)
            assert not wfrun_home.exists()
            run = workflows.execute_workflow(PriceWatch, {"item": "tea"}, execution_id="t1",
                                             clock=wfrun_clock)
            try:
                asyncio.run(run)
            except workflows.WorkflowFailedError:
                pass
            assert (wfrun_home / "runs" / "t1.jsonl").exists()
        """,
    )
    result.assert_outcomes(passed=1)


def test_wfrun_run_mocks_activities_by_name_and_skips_timers(pytester: pytest.Pytester) -> None:
    result = run_users_tests(
        pytester,
        """
        from shop import PriceWatch

        def test_the_price_went_up(wfrun_run, wfrun_clock):
            prices = iter([100, 120])
            run = wfrun_run(PriceWatch, {"item": "tea"},
                            activities={"fetch_price": lambda item: next(prices)})
            assert run.result == 20
            assert run.calls_to("fetch_price") == [{"item": "tea"}, {"item": "tea"}]
            assert wfrun_clock.slept == [86400]
        """,
    )
    result.assert_outcomes(passed=1)


def test_wfrun_replay_refuses_a_history_todays_code_does_not_make(
    pytester: pytest.Pytester,
) -> None:
    result = run_users_tests(
        pytester,
        """
        import pytest
        import wfrun as workflows
        from shop import PriceWatch, fetch_price

        @workflows.workflow.define(name="price_watch")
        class ChangedPriceWatch:
            @workflows.workflow.entrypoint
            async def run(self, item: str) -> int:
                return await fetch_price(item + "!")

        def test_a_change_breaks_the_saved_run(wfrun_run, wfrun_replay, wfrun_home):
            run = wfrun_run(PriceWatch, {"item": "tea"}, activities={"fetch_price": lambda item: 1})
            saved = wfrun_home / "runs" / f"{run.run_id}.jsonl"
            assert wfrun_replay(saved, PriceWatch).finished
            with pytest.raises(workflows.NonDeterminismError):
                wfrun_replay(saved, ChangedPriceWatch)
        """,
    )
    result.assert_outcomes(passed=1)
