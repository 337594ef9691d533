"""The replay fast path (a call awaited where it is made) against the ordinary path: the same
results, the same errors, the same hashes after it; and the reader and the 3.11 guard alike."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import pytest
from pydantic import Field

import wfrun as workflows
from wfrun.errors import NonDeterminismError
from wfrun.events import with_checksum
from wfrun.local.store import RunStore
from wfrun.testing import replay

from conftest import as_workflow, run_live

# -- 1. a narrowed input annotation: the ordinary path validates the call's input ------------


@workflows.activity(name="r4_check")
async def check_v1(value: int) -> int:
    return value


@workflows.activity(name="r4_check")
async def check_v2(value: Annotated[int, Field(ge=10)]) -> int:  # the code changed since
    return value


@workflows.workflow.define(name="r4_narrowed_v1")
class NarrowedV1:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        return await check_v1(1)


@workflows.workflow.define(name="r4_narrowed_v2")
class NarrowedV2:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        return await check_v2(1)


@workflows.workflow.define(name="r4_narrowed_v2_stored")
class NarrowedV2Stored:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        call = check_v2(1)  # the ordinary path: not awaited where it is made
        return await call


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("workflow", [NarrowedV2Stored, NarrowedV2], ids=["ordinary", "fast"])
def test_an_input_todays_annotation_refuses_is_reported_on_replay(workflow: type) -> None:
    path = run_live(NarrowedV1, "narrowed")
    as_workflow(path, workflow.__wfrun_workflow__.name)
    with pytest.raises(NonDeterminismError):
        replay(path, workflow)


# -- 2. a call whose encoding raises a plain TypeError: the ordinary path took a key first ----


@workflows.activity
async def r4_any(value: Any) -> int:
    return 1


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@workflows.workflow.define(name="r4_deep_hashes")
class DeepHashes:
    @workflows.workflow.entrypoint
    async def run(self) -> list[int]:
        await r4_any(0)  # the history is recorded from here on: a replay drives the rest
        # Encodes alone (depth 254), not inside the arguments' object: orjson's own
        # TypeError, not a WfrunError (payload.encode_arguments re-raises it as is).
        with contextlib.suppress(TypeError):
            await r4_any(_deep(254))

        async def aside() -> None:
            pass

        task = asyncio.create_task(aside())
        await task
        return [hash(task)]


@pytest.mark.usefixtures("isolated")
def test_a_task_made_after_a_call_whose_encoding_raised_keeps_its_live_hash() -> None:
    path = run_live(DeepHashes, "deep")
    replay(path, DeepHashes)  # the recorded result holds the live hash


# -- 3. (before w4 too) a cancellation requested then withdrawn, still pending on the task ----


@workflows.activity
async def r4_echo(value: int) -> int:
    return value


@workflows.workflow.define(name="r4_uncancel")
class Uncancel:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        await r4_echo(0)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        task.uncancel()  # cancelling() is 0 again; the cancel still hits the next suspension
        try:
            await r4_echo(1)
        except asyncio.CancelledError:
            return "cancelled"
        return "not cancelled"


@pytest.mark.usefixtures("isolated")
def test_a_withdrawn_cancel_still_pending_replays_as_it_ran_live() -> None:
    path = run_live(Uncancel, "uncancel")
    replay(path, Uncancel)


@workflows.activity
async def r5_step(value: int) -> int:
    return value


@workflows.workflow.define(name="r5_steps")
class Steps:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        return sum([await r5_step(i) for i in range(steps)])


# -- 4. the reader: every line read the fast way as the long way reads it --------------------


def _reader_verdicts() -> list[tuple[bytes, object, object, object]]:
    import dataclasses

    from test_cheap_replay import sample_events

    from wfrun.errors import HistoryCorruptError
    from wfrun.events import CHECKSUMMED, EVENT_TYPES, WorkflowStarted, with_checksum
    from wfrun.local.history import LineReader, check_next, parse_line

    samples = sample_events()
    started_obj = next(s for s in samples if s["type"] == "WorkflowStarted")
    started_fields = {f.name for f in dataclasses.fields(WorkflowStarted)}
    started = WorkflowStarted(
        **{
            **{k: v for k, v in started_obj.items() if k in started_fields},
            "id": 1,
            "format": CHECKSUMMED,
        }
    )
    path = Path("h.jsonl")

    def outcome(call: Any) -> object:
        try:
            return ("ok", call())
        except HistoryCorruptError as exc:
            return ("refused", str(exc))
        except Exception as exc:  # anything else escaping is a difference too
            return ("crash", repr(exc))

    def fast(line: bytes) -> object:
        events: list[Any] = []
        LineReader(path, started).read([line], events)
        return events[0]

    def checked(line: bytes) -> object:
        LineReader(path, started).check([line])
        return None

    def long(line: bytes) -> object:
        event = parse_line(path, 2, line, checksummed=True)
        check_next(path, 2, event, started)
        return event

    kinds = [k for k in EVENT_TYPES if k != "WorkflowStarted"]
    bodies: list[bytes] = []
    for sample in samples:
        if sample["type"] == "WorkflowStarted":
            continue
        obj = {k: v for k, v in sample.items() if k != "crc"}
        obj["id"] = 2
        body = orjson.dumps(obj)
        inner = body[1:-1]
        bodies += [
            body,
            orjson.dumps(dict(reversed(list(obj.items())))),
            b"{" + inner + b',"zzz":1}',
            b'{"crc":"00000000",' + inner + b"}",
            b"{" + inner + b',"id":2}',
            b'{"id":7,' + inner + b"}",
            b"{" + inner + b',"id":7}',
            b'{"typ\\u0065":"%s",' % str(obj["type"]).encode() + inner + b"}",
            b"{" + inner + b',"type":%s}' % orjson.dumps(obj["type"]),
            b" " + body,
            b"{" + inner + b', "pad":"%s"}' % (b"x" * 200_000),
        ]
        for other in kinds:
            bodies.append(b"{" + inner + b',"type":"%s"}' % other.encode())
            bodies.append(b'{"type":"%s",' % other.encode() + inner + b"}")
        for name in obj:
            rest = {k: v for k, v in obj.items() if k != name}
            bodies.append(orjson.dumps(rest))
            for odd in (None, 1, "x", [], {}, True, 1.5, 2**63):
                bodies.append(orjson.dumps({**obj, name: odd}))
    found = []
    for body in bodies:
        line = with_checksum(body)
        found.append(
            (
                line,
                outcome(lambda line=line: fast(line)),
                outcome(lambda line=line: long(line)),
                outcome(lambda line=line: checked(line)),
            )
        )
    return found


def test_every_line_is_read_the_fast_way_as_the_long_way_reads_it() -> None:
    differ = []
    for line, fast, long, checked in _reader_verdicts():
        verdict = ("ok", None) if long[0] == "ok" else long
        if fast != long or checked != verdict:
            differ.append((line[:200], fast, long, checked))
    assert differ == [], differ[:3]


def _started_variants() -> list[bytes]:
    """Lines where the start of call 7's first attempt is expected (after its scheduling):
    as the writer writes it, and off from it in every way the reader's shortcut looks at."""
    time = "2026-11-28T12:00:00.000150Z"
    body = '{"id":3,"ts":"%s","type":"ActivityStarted","seq":%s,"attempt":%s}'
    times = [
        time,
        "2026-11-28T12:00:00.999999Z",  # the same second: the reader checked it already
        "2026-11-28T12:00:01.000000Z",
        "2026-11-28T12:00:00.00015xZ",
        "2026-11-28T12:00:00.0001\\u0030Z",  # the same time, an escape in its JSON
        "2026-11-28T12:00:00.000150+00:00",
        "2026-11-28T12:00:00.000150",
        "2026-11-28T12:00:00Z",
        "2026-11-28t12:00:00.000150Z",
        "2026-11-28 12:00:00.000150Z",
        "2026-02-30T12:00:00.000150Z",
        "2026-11-28T24:00:00.000150Z",
        "1969-12-31T23:59:59.999999Z",
        "9001-01-01T00:00:00.000000Z",
        "2026-11-28T12:00:00.000\u0661\u0665\u0660Z",  # digits, not ASCII ones
        '2026-11-28T12:00:00.000150\\"Z',
        "2026-11-28T12:00:00.00015\\t0Z",
        "2026-11-28T12:00:00.00015\t0Z",  # a raw tab: no JSON
        "2026-11-28T12:00:00.000150Zx",
        "2026-11-28T12:00:00.00015",
        "",
    ]
    bodies = [body % (t, 7, 1) for t in times]
    bodies += [body % (time, seq, attempt) for seq, attempt in [(8, 1), (7, 2), (0, 1), (7, 0)]]
    bodies += [
        body.replace('"id":3', '"id":4') % (time, 7, 1),
        body.replace('"id":3', '"id":3.0') % (time, 7, 1),
        body.replace('"id":3', '"id": 3') % (time, 7, 1),
        body % (time, "7.0", 1),
        body % (time, '"7"', 1),
        body % (time, 7, "true"),
        body % (time, 7, '1,"attempt":1'),
        body % (time, 7, '1,"attempt":2'),
        body % (time, 7, '1,"zzz":1'),
        body.replace("ActivityStarted", "ActivityStarteD") % (time, 7, 1),
        body.replace('"attempt"', '"attempts"') % (time, 7, 1),
        '{"ts":"' + time + '","id":3,"type":"ActivityStarted","seq":7,"attempt":1}',
    ]
    lines = [with_checksum(b.encode()) for b in bodies]
    good = lines[0]
    lines += [good.replace(b'"}', b'"} '), good[:-3] + b'X"}', good[:-10] + good[-10:].upper()]
    lines += [good[:-2] + b"0" + good[-1:], b'{"id":3', b""]
    return lines


def test_the_start_of_an_attempt_is_read_the_fast_way_as_the_long_way_reads_it() -> None:
    import dataclasses

    from test_cheap_replay import sample_events

    from wfrun.errors import HistoryCorruptError
    from wfrun.events import CHECKSUMMED, WorkflowStarted
    from wfrun.local.history import LineReader, check_next, parse_line

    fields = {f.name for f in dataclasses.fields(WorkflowStarted)}
    first = next(s for s in sample_events() if s["type"] == "WorkflowStarted")
    started = WorkflowStarted(
        **{**{k: v for k, v in first.items() if k in fields}, "id": 1, "format": CHECKSUMMED}
    )
    path = Path("h.jsonl")

    def scheduled(number: int, seq: int) -> bytes:
        return with_checksum(
            b'{"id":%d,"ts":"2026-11-28T12:00:00.000100Z","type":"ActivityScheduled",'
            b'"seq":%d,"name":"f","input":{"x":1}}' % (number, seq)
        )

    def fast(lines: list[bytes]) -> object:
        events: list[Any] = []
        try:
            LineReader(path, started).read(lines, events)
        except HistoryCorruptError as exc:
            return (events, str(exc))
        return (events, None)

    def long(lines: list[bytes]) -> object:
        events: list[Any] = []
        last: Any = started
        try:
            for number, line in enumerate(lines, 2):
                event = parse_line(path, number, line, checksummed=True)
                check_next(path, number, event, last)
                events.append(event)
                last = event
        except HistoryCorruptError as exc:
            return (events, str(exc))
        return (events, None)

    variants = _started_variants()
    differ = []
    # Each variant after a scheduling, and again after a second one (the reader remembers
    # the second of the last time it read).
    for one in variants:
        for two in variants:
            second = two.replace(b'"id":3', b'"id":5').replace(b'"seq":7', b'"seq":8')
            lines = [scheduled(2, 7), one, scheduled(4, 8), with_checksum_again(second)]
            if fast(lines) != long(lines):
                differ.append(lines)
    assert differ == [], differ[:3]
    assert fast([scheduled(2, 7), variants[0]])[1] is None  # the writer's line reads


@pytest.mark.usefixtures("isolated")
def test_the_start_of_every_first_attempt_is_read_without_decoding_its_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wfrun.events import _BUILDERS, line_builder

    run_live(Steps, "steps", {"steps": 40})  # ids past 10 and past 100
    built: list[object] = []
    builder = line_builder("ActivityStarted")
    assert builder is not None

    def counted(obj: dict[str, Any]) -> object:
        built.append(obj)
        return builder(obj)

    monkeypatch.setitem(_BUILDERS, "ActivityStarted", counted)
    events = RunStore(Path.cwd() / "home").read("steps").events
    assert [e.type for e in events].count("ActivityStarted") == 40
    assert built == []


def with_checksum_again(line: bytes) -> bytes:
    """``line`` signed anew after an edit, if it was signed (an edited, unsigned line stays)."""
    tail = b',"crc":"'
    at = line.rfind(tail)
    if at < 0 or not line.endswith(b'"}') or len(line) - at != 18:
        return line
    return with_checksum(line[:at] + b"}")


def _indexed_the_plain_way(events: list[Any]) -> tuple[object, ...]:
    """What `RecordedRun` indexes, by its rules written plainly: the reference for the
    shortcuts it takes for the three events of every step."""
    from itertools import islice

    from wfrun.events import COMMAND, RESOLUTION, TERMINAL
    from wfrun.local.replay import _DECIDES, _STEPS

    commands: dict[int, Any] = {}
    resolutions: list[Any] = []
    resolved: set[int] = set()
    bookkeeping: dict[int, list[Any]] = {}
    terminal, last_progress = None, 0
    for event in islice(events, 1, None):
        cls = event.__class__
        if cls.role == COMMAND:
            commands[event.seq] = event
            last_progress = event.id
        elif cls.role == RESOLUTION or (cls in _DECIDES and event.resolves()):
            resolutions.append(event)
            last_progress = event.id
            if cls in _STEPS:
                resolved.add(event.seq)
                bookkeeping.pop(event.seq, None)
        elif cls.role == TERMINAL:
            terminal = event
        elif cls in _STEPS:
            bookkeeping.setdefault(event.seq, []).append(event)
    return commands, resolutions, resolved, bookkeeping, terminal, last_progress


def test_a_recorded_run_is_indexed_as_its_rules_say_whatever_the_order_of_its_events() -> None:
    import dataclasses
    import random

    from test_cheap_replay import sample_events

    from wfrun.events import EVENT_TYPES
    from wfrun.local.replay import RecordedRun

    samples = {s["type"]: s for s in sample_events()}
    common = ["ActivityScheduled", "ActivityStarted", "ActivityCompleted"]
    kinds = [*common * 6, "ActivityFailed", "ActivityHeartbeat", "ActivityTimedOut",
             "ActivityCanceled", "TimerStarted", "TimerFired", "SignalReceived",
             "WorkflowCompleted"]  # fmt: skip
    chooser = random.Random(11)

    def event(kind: str, number: int) -> Any:
        cls = EVENT_TYPES[kind]
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in samples[kind].items() if k in fields}
        values["id"] = number
        if "seq" in values:
            values["seq"] = chooser.randint(1, 4)
        if "retry_in" in values:
            values["retry_in"] = chooser.choice([None, 1.0])
        return cls(**values)

    differ = []
    for _ in range(3000):
        events = [event("WorkflowStarted", 1)]
        events += [event(chooser.choice(kinds), n) for n in range(2, chooser.randint(2, 14))]
        run = RecordedRun("r", events)
        found = (run.commands, run.resolutions, run.resolved, run._bookkeeping, run.terminal,
                 run.last_progress)  # fmt: skip
        if found != _indexed_the_plain_way(events):
            differ.append([e.type for e in events])
    assert differ == [], differ[:3]


# -- 5. (held) many call shapes replay as they ran live; changed code is reported alike --------


@workflows.activity
async def r4_other(value: int) -> int:
    return value


@workflows.workflow.define(name="r4_shapes")
class Shapes:
    def __init__(self) -> None:
        self.got: list[int] = []

    @workflows.workflow.signal
    async def poke(self, value: int) -> None:
        self.got.append(await r4_echo(value))

    async def helper(self, value: int) -> int:
        return await r4_echo(value)

    @workflows.workflow.entrypoint
    async def run(self) -> list[object]:
        out: list[object] = [await r4_echo(1)]
        out.append(await self.helper(2))
        out.append(await r4_echo(*[3]))
        out.append(await r4_echo(**{"value": 4}))
        out.append(await r4_echo(await r4_echo(5)))
        out += await asyncio.gather(r4_echo(6), r4_echo(7))
        out.append(await asyncio.wait_for(r4_echo(8), 100))
        async with asyncio.timeout(100):
            out.append(await r4_echo(9))
        out.append(await (lambda v: r4_echo(v))(10))
        out += [await r4_echo(v) for v in (11, 12)]
        out.append(await asyncio.create_task(r4_echo(13)))
        try:
            out.append(await r4_echo("bad"))  # type: ignore[arg-type]
        except Exception as exc:
            out.append(type(exc).__name__)
        out.append(await r4_echo(14))

        async def aside() -> None:
            pass

        task = asyncio.create_task(aside())
        await task
        out.append(hash(task))
        return out


@pytest.mark.usefixtures("isolated")
def test_many_call_shapes_replay_as_they_ran_live() -> None:
    path = run_live(Shapes, "shapes")
    replay(path, Shapes)


@workflows.workflow.define(name="r4_changed_v1")
class ChangedV1:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await r4_echo(1)
        await r4_echo(2)
        return 0


@workflows.workflow.define(name="r4_changed_name_fast")
class ChangedNameFast:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await r4_echo(1)
        await r4_other(2)
        return 0


@workflows.workflow.define(name="r4_changed_name_ordinary")
class ChangedNameOrdinary:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await r4_echo(1)
        c = r4_other(2)
        await c
        return 0


@workflows.workflow.define(name="r4_changed_input_fast")
class ChangedInputFast:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await r4_echo(1)
        await r4_echo(3)
        return 0


@workflows.workflow.define(name="r4_changed_input_ordinary")
class ChangedInputOrdinary:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await r4_echo(1)
        c = r4_echo(3)
        await c
        return 0


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize(
    ("fast", "ordinary"),
    [(ChangedNameFast, ChangedNameOrdinary), (ChangedInputFast, ChangedInputOrdinary)],
    ids=["name", "input"],
)
def test_changed_code_is_reported_alike_the_fast_way_and_the_ordinary_way(
    fast: type, ordinary: type
) -> None:
    messages = []
    for workflow in (fast, ordinary):
        path = run_live(ChangedV1, workflow.__name__)
        as_workflow(path, workflow.__wfrun_workflow__.name)
        with pytest.raises(NonDeterminismError) as caught:
            replay(path, workflow)
        message = str(caught.value).replace(workflow.__name__, "RUN")
        messages.append((caught.value.event_id, message))
    assert messages[0] == messages[1]


# -- 6. (held) the 3.11 guard: back right after a call that raised, gone after the step ------

import time  # noqa: E402


@workflows.workflow.define(name="r4_guard_raise")
class GuardAfterRaise:
    @workflows.workflow.entrypoint
    async def run(self) -> bool:
        with contextlib.suppress(TypeError):
            r4_any(_deep(254))  # raises TypeError synchronously, in the wrapper's call
        return time.time() > 0  # R4 IMPURE after a raise


@pytest.mark.usefixtures("isolated")
def test_the_clock_read_right_after_an_activity_call_that_raised_is_reported() -> None:
    from wfrun.local import guard

    guard._reported.clear()
    with pytest.warns(workflows.DeterminismWarning) as caught:
        asyncio.run(workflows.execute_workflow(GuardAfterRaise, execution_id="raise"))
    source = Path(__file__).read_text().splitlines()
    line = next(n for n, text in enumerate(source, 1) if "R4 IMPURE after a raise" in text)
    assert line in {w.lineno for w in caught}
    from wfrun import runtime

    assert sys.getprofile() is None
    assert runtime.guard_suspended == {}
