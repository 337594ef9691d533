"""What a run costs the process beyond its own steps: nothing that grows with the runs."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import wfrun as workflows

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
