"""What a run costs the process beyond its own steps: nothing that grows with the runs."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from pathlib import Path

import pytest

import wfrun as workflows
from wfrun.local.store import RunStore

from flows.steps import StepsWorkflow


def test_runs_one_after_another_share_one_watchdog_thread(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted)
    for i in range(3):
        asyncio.run(workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id=f"r{i}"))
    # The watchdog watches every run (one started earlier in this process serves as well).
    assert started.count("wfrun-watchdog") <= 1


def test_runs_ending_among_others_trim_their_files_in_a_sync_thread(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trims: list[str] = []
    ftruncate = os.ftruncate

    def recorded(fd: int, length: int) -> None:
        trims.append(threading.current_thread().name)
        ftruncate(fd, length)

    monkeypatch.setattr(os, "ftruncate", recorded)

    async def together() -> list[list[int]]:
        runs = (
            workflows.execute_workflow(StepsWorkflow, {"count": 2}, execution_id=f"t{i}", home=home)
            for i in range(4)
        )
        return await asyncio.gather(*runs)

    assert asyncio.run(together()) == [[10, 20]] * 4
    for i in range(4):
        assert b"\0" not in RunStore(home).path(f"t{i}").read_bytes()  # trimmed, all of them
    # Every run but the last to end had company: its trim (a journal entry) kept off the loop.
    assert sum(name.startswith("wfrun sync") for name in trims) >= 3


def test_the_registries_kept_per_event_loop_hold_no_reference_to_it(home: Path) -> None:
    """They are weak dictionaries keyed by the loop: a value that held the loop would keep
    every finished loop (and what it holds) alive."""
    from wfrun.local import attempts, syncs

    kept: list[object] = []

    async def together() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        runs = (
            workflows.execute_workflow(StepsWorkflow, {"count": 2}, execution_id=f"g{i}", home=home)
            for i in range(3)
        )
        found = await asyncio.gather(*runs)  # in company: the batched syncs are used too
        kept.extend([attempts._deadlines[loop], syncs._batches.get(loop), syncs._batches])
        held: list[object] = list(kept)
        for _ in range(6):  # what they hold, what that holds, and so on
            held += gc.get_referents(*held)
        assert not any(each is loop for each in held)
        return found

    assert asyncio.run(together()) == [[10, 20]] * 3
