"""Cheap replay: each result validated once, and a history read in one pass keeps every check."""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.clock import SystemClock
from wfrun.errors import HistoryCorruptError
from wfrun.events import (
    EVENT_TYPES,
    TERMINAL,
    Event,
    EventFormatError,
    checked_event,
    line_builder,
    line_check,
)
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


# -- the line readers: the generated fast path refuses whatever the long way refuses ---------


def _sample(name: str, hint: object) -> object:
    """A valid value for a field of this name and annotation."""
    options = [o for o in typing.get_args(hint) if o is not type(None)] or [hint]
    kind = typing.get_origin(options[0]) or options[0]
    if name in ("ts", "due", "until"):
        return "2026-11-28T10:00:00.000001Z"
    if name in ("run_id", "parent", "child", "continued_from"):
        return "run-1"
    samples: dict[object, object] = {int: 2, float: 0.5, str: "x", dict: {"k": [1]}, list: [1]}
    return samples.get(kind, {"any": [1, "x", None]})


def sample_events() -> list[dict[str, object]]:
    """One valid event of every type as its line's object, every field set, crc last."""
    objects = []
    for kind, cls in EVENT_TYPES.items():
        hints = typing.get_type_hints(cls)
        obj = {
            f.name: kind if f.name == "type" else _sample(f.name, hints[f.name])
            for f in dataclasses.fields(cls)
        }
        objects.append({**obj, "crc": "00000000"})
    return objects


#: Values that fit some field or other, and values that fit none: each is tried in every field.
ODD_VALUES: list[object] = [
    None, -1, 0, 1, 2**64, 10**10, 10**10 + 1, 1e10, 1e10 + 1, -0.0, 0.0, 0.5, 1e308, "",
    "x", [], {}, True, False, "\x1b[2J", "2026-11-24T10:00:00", "2026-02-31T10:00:00Z",
    "2026-11-24 10:00:00Z", "1969-12-31T23:59:59Z", "9001-01-01T00:00:00Z",
    "9000-12-31T23:59:59+00:00", "1970-01-01T00:00:00Z", "../etc", "a" * 129, {"type": 1},
]  # fmt: skip


def variants(obj: dict[str, object]) -> list[dict[str, object]]:
    """``obj`` with each field set to each odd value, then dropped, then an extra field."""
    out = []
    fields = [key for key in obj if key not in ("type", "crc")]
    for key in fields:
        out += [{**obj, key: value} for value in ODD_VALUES]
        out.append({k: v for k, v in obj.items() if k != key})
    out.append({**{k: v for k, v in obj.items() if k != "crc"}, "extra": 1, "crc": "00000000"})
    return out


def the_long_way(obj: dict[str, object]) -> Event | None:
    """The event the table of checks accepts ``obj`` as (no generated code), or None."""
    try:
        return checked_event({k: v for k, v in obj.items() if k != "crc"})
    except (EventFormatError, TypeError):
        return None


def test_the_generated_line_builder_builds_what_the_long_way_builds_and_refuses_the_rest() -> None:
    tried = refused = 0
    for sample in sample_events():
        build = line_builder(str(sample["type"]))
        if sample["type"] == "WorkflowStarted":
            assert build is None  # the first line is always read the long way
            continue
        if EVENT_TYPES[str(sample["type"])].role == TERMINAL:
            assert build is None  # the end of a run is read the long way (see LineReader.read)
            continue
        assert build is not None
        for obj in [sample, *variants(sample)]:
            expected = the_long_way(obj)
            built = build(dict(obj))
            tried += 1
            if expected is None:
                refused += 1
                assert built is None, obj
            elif list(obj) == [*expected.__dataclass_fields__, "crc"]:  # as written
                assert built == expected, obj
                assert built is not None
                assert built.type is expected.type
    assert tried > 3000
    assert refused > 1500


def test_the_generated_line_builder_builds_a_valid_line_whatever_the_order_of_its_fields() -> None:
    built = 0
    for sample in sample_events():
        build = line_builder(str(sample["type"]))
        if build is None or the_long_way(sample) is None:
            continue
        obj = dict(reversed(list(sample.items())))  # the checksum first, the id last
        assert build(dict(obj)) == the_long_way(obj), obj
        built += 1
    assert built > 12  # the types read the fast way (all but the first and the ends)


def test_the_generated_line_check_passes_what_the_long_way_builds_and_refuses_the_rest() -> None:
    tried = 0
    for sample in sample_events():
        check = line_check(str(sample["type"]))
        if check is None:
            continue
        for obj in [sample, *variants(sample)]:
            expected = the_long_way(obj)
            tried += 1
            if expected is None:
                assert not check(dict(obj)), obj
            elif list(obj) == [*expected.__dataclass_fields__, "crc"]:
                assert check(dict(obj)), obj
    assert tried > 3000


def lines_of(store: RunStore, run_id: str) -> tuple[list[bytes], HistoryCorruptError | None]:
    """What ``history --json`` prints of a run (its lines as checked), and the damage it met."""
    lines: list[bytes] = []
    try:
        with store.stream(run_id) as stream:
            lines.extend(stream.lines())
    except HistoryCorruptError as exc:
        return lines, exc
    return lines, None


def test_history_json_refuses_every_single_bit_flip_at_the_line_a_read_names() -> None:
    path = run_steps(2, "flips")
    data = path.read_bytes()
    store = RunStore(Path.cwd() / "home")
    for offset in range(len(data) - 1):  # the last byte is the newline: a flip there is a tear
        for bit in range(8):
            flipped = bytearray(data)
            flipped[offset] ^= 1 << bit
            path.write_bytes(flipped)
            with pytest.raises(HistoryCorruptError) as read:
                store.read("flips")
            lines, damage = lines_of(store, "flips")
            assert damage is not None, (offset, bit)
            assert (damage.line, str(damage)) == (read.value.line, str(read.value))
            assert lines == data.splitlines()[: len(lines)]
            assert len(lines) == (read.value.line or 1) - 1


@pytest.mark.parametrize(
    ("number", "change"),
    [
        (4, {"id": 5}),
        (4, {"seq": 0}),
        (4, {"ts": "2026-02-31T10:00:00Z"}),
        (4, {"type": "WorkflowCompleted", "result": 1}),
        (6, {"extra": 1}),
    ],
)
def test_history_json_refuses_a_signed_but_invalid_line_as_a_read_does(
    number: int, change: dict[str, object]
) -> None:
    path = run_steps(3, "signed")
    if change.get("type") == "WorkflowCompleted":  # an end, then more events after it
        lines = path.read_bytes().splitlines(keepends=True)
        lines[number - 1] = signed({"id": number, "ts": "2026-11-28T10:00:00Z", **change})
        path.write_bytes(b"".join(lines))
    else:
        rewrite_line(path, number, change)
    store = RunStore(Path.cwd() / "home")
    with pytest.raises(HistoryCorruptError) as read:
        store.read("signed")
    lines, damage = lines_of(store, "signed")
    assert damage is not None
    assert (damage.line, str(damage)) == (read.value.line, str(read.value))
    assert len(lines) == (read.value.line or 1) - 1


# -- results read back ------------------------------------------------------------------------


def _returning(annotation: object) -> Signature:
    def fn() -> None: ...

    fn.__annotations__["return"] = annotation
    return Signature(fn, owner="activity 'fn'")


@pytest.mark.parametrize(
    "annotation", [int, float, str, bool, None, typing.Any, object, int | None, list[int]]
)
@pytest.mark.parametrize(
    "value", [0, 1, -7, 2**62, 1.0, 1.5, "", "3", "x", True, False, None, [1, "2"], {"a": 1}]
)
def test_a_result_read_back_is_what_validating_its_json_gives(
    annotation: object, value: object
) -> None:
    signature = _returning(annotation)
    try:
        expected = signature.decode_result(orjson.dumps(value))
    except Exception:
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever validation raises
            signature.decode_value(value)
        return
    decoded = signature.decode_value(value)
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_a_line_longer_than_a_chunk_is_read_whole_by_every_reader() -> None:
    path = run_steps(3, "long")
    rewrite_line(path, 4, {"result": "x" * (3 << 20)})  # 3 MiB: past any chunk a reader takes
    store = RunStore(Path.cwd() / "home")
    events = store.read("long").events
    assert events[3].result == "x" * (3 << 20)  # type: ignore[attr-defined]
    with store.stream("long") as stream:
        assert [event for event, _ in stream] == events
    lines, damage = lines_of(store, "long")
    assert damage is None
    assert lines == path.read_bytes().splitlines()
