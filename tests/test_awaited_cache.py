"""The cache of where code awaits an activity call at once (`instance._AWAITED`, read on
every call) keeps no code object alive: code that is dropped (a module reloaded, code
compiled and let go) takes its entry with it, so the cache stays bounded by the live code."""

from __future__ import annotations

import gc
from pathlib import Path

from wfrun.local import instance
from wfrun.testing import run_workflow

from flows.fresh_code import FreshCode

CALLS = 200


def test_the_awaited_calls_cache_drops_the_entries_of_code_that_is_gone(home: Path) -> None:
    before = len(instance._AWAITED)
    run = run_workflow(FreshCode, {"count": CALLS}, home=home)
    assert run.result == sum(range(1, CALLS + 1))
    gc.collect()  # each helper's function and namespace hold each other
    # A handful for the workflow's own code; none for the 200 helpers, each dropped.
    assert len(instance._AWAITED) - before < 10
    assert set(instance._AWAITED) == set(instance._AWAITED_CODE)
