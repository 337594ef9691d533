"""Saved histories keep replaying, and today's writer still writes their format.

tests/histories/ holds histories written by real runs. A change that makes them unreadable, or
makes today's code replay them differently, or changes what the writer writes, fails here
loudly. After an intended format change, keep the old ones (tests/histories/format1/ holds the
format-1 originals, which must stay readable), regenerate them with
``python tests/histories/regenerate.py`` (a script: no test writes into the tree) and bump
FORMAT_VERSION.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.definitions import require_workflow_definition
from wfrun.local import LocalBackend
from wfrun.local.store import RunStore
from wfrun.testing import FakeClock, replay

import flows.golden
from conftest import TESTS
from flows.family import FamilyWorkflow
from flows.golden import ApprovalWorkflow, GoldenWorkflow, OvernightWorkflow, TypoWorkflow
from flows.messages import CartWorkflow, SagaWorkflow
from flows.race import FirstCompletedWorkflow, HelpersWorkflow, RaceWorkflow, TimerRaceWorkflow

HISTORIES = TESTS / "histories"
#: Every older format's histories, which today's wfrun must still read and replay.
OLDER = [HISTORIES / "format1", HISTORIES / "format2"]
GOLDEN = {
    "golden.jsonl": GoldenWorkflow,
    "race.jsonl": RaceWorkflow,
    "first_completed.jsonl": FirstCompletedWorkflow,
    "timer_race.jsonl": TimerRaceWorkflow,
    "helpers.jsonl": HelpersWorkflow,
    "overnight.jsonl": OvernightWorkflow,
    "approval.jsonl": ApprovalWorkflow,
    "canceled.jsonl": SagaWorkflow,
    "updated.jsonl": CartWorkflow,
    "blocked.jsonl": TypoWorkflow,
    "family.jsonl": FamilyWorkflow,
}
#: Written by today's writer in their own way (not a plain execute_workflow): see fresh_*.
SPECIAL = {
    "golden.jsonl",
    "overnight.jsonl",
    "approval.jsonl",
    "canceled.jsonl",
    "updated.jsonl",
    "blocked.jsonl",
}
VOLATILE = {
    "ts",
    "seed",
    "cwd",
    "wfrun_version",
    "duration",
    "due",
    "traceback",
    "at",
    "crc",
    "message",
}


def fresh_golden_run(run_id: str = "golden") -> Path:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    asyncio.run(
        workflows.execute_workflow(GoldenWorkflow, {"key": "k1"}, execution_id=run_id, clock=clock)
    )
    return RunStore().path(run_id)


def started(workflow: type, params: dict, run_id: str, clock: FakeClock | None = None) -> str:
    """Start ``workflow`` as ``wfrun start --max-wait 60`` would; its status (it must stop)."""
    definition = require_workflow_definition(workflow)
    target = f"{workflow.__module__}:{workflow.__qualname__}"
    outcome = asyncio.run(
        LocalBackend().start(
            definition,
            definition.encode_input(params),
            target=target,
            run_id=run_id,
            clock=clock,
            max_wait=60,
        )
    )
    return outcome.status


def fresh_waiting_run(run_id: str = "overnight") -> Path:
    """A run that stops WAITING on its 8-hour timer, then is resumed once it is due."""
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert started(OvernightWorkflow, {"key": "k1"}, run_id, clock) == "WAITING"
    clock.advance(8 * 3600)
    second = asyncio.run(LocalBackend().resume(run_id, clock=clock, max_wait=60))
    assert second.status == "COMPLETED"
    return RunStore().path(run_id)


def fresh_approval_run(run_id: str = "approval") -> Path:
    """A run that waits for a signal, receives it (resumed by the signal), and completes."""
    assert started(ApprovalWorkflow, {"order": "A1"}, run_id) == "WAITING"
    sent = asyncio.run(LocalBackend().signal(run_id, "approve", {"approver": "ada"}, max_wait=60))
    assert sent.outcome is not None
    assert sent.outcome.status == "COMPLETED"
    return RunStore().path(run_id)


def fresh_canceled_run(run_id: str = "canceled") -> Path:
    """A run that waits, is cancelled (resumed by the cancel), and compensates."""
    assert started(SagaWorkflow, {"order": "O1"}, run_id) == "WAITING"
    sent = asyncio.run(LocalBackend().cancel(run_id, "customer left", max_wait=60))
    assert sent.outcome is not None
    assert sent.outcome.status == "CANCELED"
    return RunStore().path(run_id)


def fresh_updated_run(run_id: str = "updated") -> Path:
    """A run that takes a refused update, an accepted one, then the signal that ends it."""
    backend = LocalBackend()
    assert started(CartWorkflow, {}, run_id) == "WAITING"
    refused = asyncio.run(backend.update(run_id, "set_quantity", {"quantity": 0}, max_wait=60))
    assert refused.rejected
    answered = asyncio.run(backend.update(run_id, "set_quantity", {"quantity": 2}, max_wait=60))
    assert answered.result == 2
    asyncio.run(backend.signal(run_id, "checkout", max_wait=60))
    return RunStore().path(run_id)


def fresh_blocked_run(run_id: str = "blocked") -> Path:
    """A run BLOCKED by a bug, then carried on once the code was fixed."""
    assert started(TypoWorkflow, {"key": "k1"}, run_id) == "BLOCKED"
    flows.golden.FIXED = True
    try:
        second = asyncio.run(LocalBackend().resume(run_id, max_wait=60))
    finally:
        flows.golden.FIXED = False
    assert second.status == "COMPLETED"
    return RunStore().path(run_id)


def shape(value: object) -> object:
    """The structure of an event, with the values that differ from run to run blanked."""
    if isinstance(value, dict):
        return {k: "…" if k in VOLATILE else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def events(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_a_saved_history_replays_against_todays_code(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flows.golden, "FIXED", True)  # the blocked run finished once fixed
    result = replay(HISTORIES / name, GOLDEN[name])
    assert result.finished
    assert result.next_steps == 0


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        pytest.param(folder, name, id=f"{folder.name}-{name}")
        for folder in OLDER
        for name in sorted(set(GOLDEN) - SPECIAL | {"golden.jsonl"})
        if (folder / name).exists()  # kinds of event that format did not have yet: none saved
    ],
)
def test_a_history_of_an_older_format_still_replays(folder: Path, name: str) -> None:
    result = replay(folder / name, GOLDEN[name])
    assert result.finished


def test_the_writer_still_writes_the_saved_format() -> None:
    written = events(fresh_golden_run())
    saved = events(HISTORIES / "golden.jsonl")
    assert [shape(e) for e in written] == [
        shape({**e, "run_id": "golden"} if e["type"] == "WorkflowStarted" else e) for e in saved
    ]


@pytest.mark.parametrize(
    ("name", "fresh"),
    [
        ("overnight.jsonl", fresh_waiting_run),
        ("approval.jsonl", fresh_approval_run),
        ("canceled.jsonl", fresh_canceled_run),
        ("updated.jsonl", fresh_updated_run),
        ("blocked.jsonl", fresh_blocked_run),
    ],
)
def test_the_writer_still_writes_the_saved_message_and_waiting_format(name: str, fresh) -> None:
    written = events(fresh())
    saved = events(HISTORIES / name)
    assert [shape(e) for e in written] == [shape(e) for e in saved]


def test_the_saved_histories_cover_every_kind_of_event_but_a_few() -> None:
    from wfrun.events import EVENT_TYPES

    seen = {e["type"] for path in HISTORIES.glob("*.jsonl") for e in events(path)}
    assert set(EVENT_TYPES) - seen <= {
        "RunResumed",
        "WorkflowFailed",
        "WorkflowTimedOut",
        "ActivityTimedOut",
        "ActivityHeartbeat",
        "TimerCanceled",
    }
