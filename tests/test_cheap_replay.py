"""Cheap replay: each result validated once, and a history read in one pass keeps every check."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.clock import SystemClock
from wfrun.errors import HistoryCorruptError
from wfrun.local.store import RunStore
from wfrun.payload import Signature

from conftest import cut_history, signed
from flows.steps import StepsWorkflow


def run_steps(count: int, run_id: str) -> Path:
    result = asyncio.run(
        workflows.execute_workflow(StepsWorkflow, {"count": count}, execution_id=run_id)
    )
    assert result == [10 * n for n in range(1, count + 1)]
    return RunStore(Path.cwd() / "home").path(run_id)


def count_result_validations(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    original = Signature.decode_result

    def counted(self: Signature, data: bytes) -> object:
        calls.append(data)
        return original(self, data)

    monkeypatch.setattr(Signature, "decode_result", counted)
    return calls


def test_a_live_activity_result_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_result_validations(monkeypatch)
    # These ints would pass as they are (`Signature.unchanged_result`): validated here as any
    # other result is, to count how often.
    monkeypatch.setattr(Signature, "unchanged_result", lambda self, value: False)
    run_steps(3, "once")
    # One per activity; the workflow's own result is validated by execute_workflow.
    activity_results = [data for data in calls if data in (b"10", b"20", b"30")]
    assert activity_results == [b"10", b"20", b"30"]


def rewrite_line(path: Path, number: int, change: dict[str, object]) -> None:
    """Edit one event and sign it again: damage that only the field checks can find."""
    lines = path.read_bytes().splitlines(keepends=True)
    event = orjson.loads(lines[number - 1])
    lines[number - 1] = signed({**event, **change})
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"seq": 0}, "ActivityCompleted.seq should be 1 or more, found 0"),
        ({"attempt": True}, "ActivityCompleted.attempt should be int, found True"),
        ({"duration": 1e11}, "ActivityCompleted.duration should be a number of seconds"),
        ({"ts": "2026-02-31T10:00:00Z"}, "ActivityCompleted.ts should be an ISO 8601 time"),
        ({"extra": 1}, "ActivityCompleted has unknown fields extra"),
    ],
)
def test_a_signed_but_invalid_line_deep_in_a_long_history_is_named(
    change: dict[str, object], problem: str
) -> None:
    path = run_steps(200, "deep")
    rewrite_line(path, 454, change)  # step 151: scheduled, started, completed (454)
    with pytest.raises(HistoryCorruptError) as caught:
        RunStore(Path.cwd() / "home").read("deep")
    assert caught.value.line == 454
    assert f"{path}:454: not a valid event: {problem}" in str(caught.value)


def test_a_valid_line_with_its_fields_in_another_order_is_read_as_written() -> None:
    path = run_steps(2, "reordered")
    lines = path.read_bytes().splitlines(keepends=True)
    event = orjson.loads(lines[3])
    del event["crc"]
    lines[3] = signed(dict(reversed(list(event.items()))))
    path.write_bytes(b"".join(lines))
    events = RunStore(Path.cwd() / "home").read("reordered").events
    assert events[3].type == "ActivityCompleted"
    assert (events[3].seq, events[3].result) == (1, 10)  # type: ignore[attr-defined]


def test_every_event_of_a_type_shares_its_type_name() -> None:
    run_steps(3, "shared")
    events = RunStore(Path.cwd() / "home").read("shared").events
    completed = [event for event in events if event.type == "ActivityCompleted"]
    assert len(completed) == 3
    assert len({id(event.type) for event in completed}) == 1


def test_a_resume_holds_no_copy_of_the_file_and_a_read_for_history_json_does() -> None:
    path = run_steps(3, "copy")
    cut_history("copy", keep=4)
    store = RunStore(Path.cwd() / "home")
    writer, resuming = store.open_for_append("copy", SystemClock())
    writer.close()
    assert resuming.stored == b""
    assert len(resuming.events) == 4
    assert store.read("copy").stored == path.read_bytes()
