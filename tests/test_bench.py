"""The benchmark suite measures what users run: its fabricated histories are the engine's own."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

import wfrun as workflows
from wfrun.events import Event, verify_checksum
from wfrun.local.store import RunStore
from wfrun.testing import replay

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The suite's own modules, imported as `bench/suite.py` imports them."""
    monkeypatch.syspath_prepend(str(BENCH))
    import common
    import workloads

    yield SimpleNamespace(common=common, workloads=workloads)
    for name in ("common", "workloads"):
        sys.modules.pop(name, None)


def test_a_fabricated_history_replays_against_the_benchmark_workflow(
    bench: Any, tmp_path: Path
) -> None:
    path = bench.common.write_run(tmp_path, "fab", bench.common.sequential_history("fab", 25))

    found = replay(path, bench.workloads.Sequential)

    assert (found.events, found.finished) == (77, True)


def test_a_fabricated_history_holds_the_events_the_engine_writes(
    bench: Any, tmp_path: Path
) -> None:
    asyncio.run(
        workflows.execute_workflow(
            bench.workloads.Sequential, {"steps": 3}, execution_id="real", home=tmp_path
        )
    )
    bench.common.write_run(tmp_path, "fab", bench.common.sequential_history("fab", 3))
    varying = {"ts", "duration", "run_id", "seed", "wfrun_version", "cwd", "continue_as_new_at"}

    def shape(event: Event) -> dict[str, Any]:
        fields = dataclasses.asdict(event)
        return {name: value for name, value in fields.items() if name not in varying}

    store = RunStore(tmp_path)
    assert [shape(e) for e in store.read("fab").events] == [
        shape(e) for e in store.read("real").events
    ]


def test_an_unfinished_fabricated_history_resumes_to_its_result(bench: Any, tmp_path: Path) -> None:
    history = bench.common.sequential_history("open", 4, finished=False)
    bench.common.write_run(tmp_path, "open", history)

    assert asyncio.run(workflows.resume_workflow("open", home=tmp_path)) == sum(range(4))


def test_the_least_asyncio_step_writes_three_checksummed_lines_per_step(
    bench: Any, tmp_path: Path
) -> None:
    path = tmp_path / "least"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        asyncio.run(bench.common._least_steps(fd, 4))
    finally:
        os.close(fd)

    lines = path.read_bytes().splitlines()
    for line in lines:
        verify_checksum(line, checksummed=True)
    assert [orjson.loads(line)["type"] for line in lines] == [
        "ActivityScheduled",
        "ActivityStarted",
        "ActivityCompleted",
    ] * 4


def test_the_least_asyncio_crowd_writes_each_run_whole_and_checksummed(
    bench: Any, tmp_path: Path
) -> None:
    asyncio.run(bench.common._least_crowd(tmp_path, 5, 3))

    for k in range(5):
        lines = (tmp_path / f"r{k}").read_bytes().splitlines()
        for line in lines:
            verify_checksum(line, checksummed=True)
        kinds = [orjson.loads(line)["type"] for line in lines]
        assert kinds == [
            "WorkflowStarted",
            *["ActivityScheduled", "ActivityStarted", "ActivityCompleted"] * 3,
            "WorkflowCompleted",
        ]
