"""The fast ways of reading and replaying a history agree with the careful ones, on random
histories and on the cases at their edges: ids that change digits, times across seconds and
out of order, a result that no longer decodes, the time after steps replayed at once."""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import wfrun as workflows
from wfrun.errors import HistoryCorruptError, NonDeterminismError
from wfrun.events import (
    CHECKSUMMED,
    CRC_TAIL,
    ActivityCompleted,
    ActivityFailed,
    ActivityHeartbeat,
    ActivityScheduled,
    ActivityStarted,
    TimerFired,
    TimerStarted,
    WorkflowCanceled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowTimedOut,
    serialize,
    with_checksum,
)
from wfrun.local.history import LineReader, check_next, parse_line
from wfrun.testing import replay

from conftest import as_workflow, run_live

# -- the byte-compare read of a first attempt's start, against the long way ---------------

_PATH = Path("h.jsonl")


def _started() -> WorkflowStarted:
    return WorkflowStarted(
        id=1,
        ts="2026-11-28T12:00:00.000000Z",
        format=CHECKSUMMED,
        run_id="r",
        workflow="w",
        target="t.py:W",
        input={},
        wfrun_version="0",
        seed=1,
        cwd="/",
        max_payload=1000,
    )


#: Times a Started line may carry: right ones crossing seconds (forwards and backwards),
#: and ones the writer never writes.
_TIMES = [
    "2026-11-28T12:00:00.000150Z",
    "2026-11-28T12:00:00.999999Z",
    "2026-11-28T12:00:01.000000Z",
    "2026-11-28T11:59:59.999999Z",  # backwards
    "2026-11-28T12:00:00.000150Z",
    "2026-12-31T23:59:59.999999Z",
    "2027-01-01T00:00:00.000000Z",
    "2026-02-28T23:59:59.000001Z",
    "2028-02-29T00:00:00.000001Z",
    "2026-02-29T00:00:00.000001Z",  # no such day
    "2026-11-28T23:59:60.000000Z",  # leap second: fromisoformat refuses
    "9000-12-31T23:59:59.999999Z",
    "9001-01-01T00:00:00.000000Z",
    "1970-01-01T00:00:00.000000Z",
    "1969-12-31T23:59:59.999999Z",
    "2026-11-28T12:00:00.000150+00:00",
    "2026-11-28T12:00:00.000150-00:0",
    "2026-11-28T12:00:00-00:00.000",
    "20261128T120000.000150000Z",
    "2026-11-28T12:00:00.0001500Z",
    "2026-11-28T12:00:00.00015Z",
]


def _line_variants(number: int, seq: int, ts: str, rng: random.Random) -> bytes:
    """The start of call ``seq``'s first attempt as line ``number``: as written, or off."""
    body = {"id": number, "ts": ts, "type": "ActivityStarted", "seq": seq, "attempt": 1}
    kind = rng.randrange(12)
    if kind < 6:
        return with_checksum(orjson.dumps(body))
    if kind == 6:  # right but for its checksum
        line = with_checksum(orjson.dumps(body))
        return line[:-3] + (b"0" if line[-3:-2] != b"0" else b"1") + line[-2:]
    if kind == 7:
        return with_checksum(orjson.dumps({**body, "id": number + rng.choice([-1, 1, 10])}))
    if kind == 8:
        return with_checksum(orjson.dumps({**body, "seq": seq + 1}))
    if kind == 9:
        return with_checksum(orjson.dumps({**body, "attempt": 2}))
    if kind == 10:  # the id written with one digit more or less than the line's number
        text = orjson.dumps(body).replace(b'"id":%d' % number, b'"id":0%d' % number)
        return with_checksum(text)
    return with_checksum(orjson.dumps({**body, "ts": ts[:-1] + "z"}))


def _history(rng: random.Random, length: int) -> list[bytes]:
    """Lines 2.. of a random history of calls (retries, heartbeats, timers), ids past 1000."""
    lines: list[bytes] = []
    seq = 0
    ts = "2026-11-28T12:00:00.000100Z"

    def number() -> int:
        return len(lines) + 2

    while len(lines) < length:
        seq += 1
        if rng.random() < 0.5:
            ts = rng.choice(_TIMES[:9])
        if rng.random() < 0.05:
            event: Any = TimerStarted(
                id=number(), ts=ts, seq=seq, duration=1.0, due="2026-11-28T12:00:01.000000Z"
            )
            lines.append(serialize(event))
            lines.append(serialize(TimerFired(id=number(), ts=ts, seq=seq)))
            continue
        lines.append(
            serialize(ActivityScheduled(id=number(), ts=ts, seq=seq, name="f", input={"x": 1}))
        )
        # Several schedulings in a row, then their starts: ids cross boundaries anywhere.
        if rng.random() < 0.2:
            continue
        lines.append(_line_variants(number(), seq, rng.choice(_TIMES), rng))
        if rng.random() < 0.2:
            lines.append(
                serialize(ActivityHeartbeat(id=number(), ts=ts, seq=seq, attempt=1, details=[1]))
            )
        if rng.random() < 0.2:
            lines.append(
                serialize(
                    ActivityFailed(
                        id=number(),
                        ts=ts,
                        seq=seq,
                        attempt=1,
                        duration=0.1,
                        error={"type": "E", "message": "m"},
                        retry_in=0.0,
                    )
                )
            )
            lines.append(serialize(ActivityStarted(id=number(), ts=ts, seq=seq, attempt=2)))
        lines.append(
            serialize(
                ActivityCompleted(id=number(), ts=ts, seq=seq, attempt=1, duration=0.1, result=1)
            )
        )
    return lines


def _fast(lines: list[bytes], cuts: list[int]) -> tuple[list[Any], str | None]:
    events: list[Any] = []
    reader = LineReader(_PATH, _started())
    try:
        start = 0
        for cut in [*cuts, len(lines)]:
            reader.read(lines[start:cut], events)
            start = cut
    except HistoryCorruptError as exc:
        return events, str(exc)
    return events, None


def _long(lines: list[bytes]) -> tuple[list[Any], str | None]:
    return _long_from(_started(), lines)


def _long_from(before: Any, lines: list[bytes]) -> tuple[list[Any], str | None]:
    """The long way's events and refusal for ``lines``, the lines after event ``before``."""
    events: list[Any] = []
    last: Any = before
    try:
        for number, line in enumerate(lines, before.id + 1):
            event = parse_line(_PATH, number, line, checksummed=True)
            check_next(_PATH, number, event, last)
            events.append(event)
            last = event
    except HistoryCorruptError as exc:
        return events, str(exc)
    return events, None


def test_histories_past_id_1000_read_the_fast_way_as_the_long_way() -> None:
    """Random histories (ids crossing 9→10, 99→100, 999→1000 anywhere, Started lines right or
    off, times forwards, backwards and invalid), read in random chunks: the same events, the
    same refusal at the same line. Each history is also read up to its first refused line."""
    rng = random.Random(5)
    for _ in range(60):
        lines = _history(rng, rng.choice([30, 150, 1200]))
        cuts = sorted(rng.sample(range(1, len(lines)), k=min(3, len(lines) - 1)))
        long = _long(lines)
        assert _fast(lines, cuts) == long
        if long[1] is not None:  # again without the damage: the rest read as well
            good = len(long[0])
            assert _fast(lines[:good], [c for c in cuts if c < good]) == (long[0], None)


def _fast_for_replay(lines: list[bytes], cuts: list[int]) -> tuple[list[Any], str | None]:
    """`_fast` as a replay reads (``keep_starts`` False): settled first starts left out."""
    events: list[Any] = []
    reader = LineReader(_PATH, _started(), keep_starts=False)
    try:
        start = 0
        for cut in [*cuts, len(lines)]:
            reader.read(lines[start:cut], events)
            start = cut
        reader.finish(events)
    except HistoryCorruptError as exc:
        return events, str(exc)
    return events, None


def _settled_start(events: list[Any], at: int) -> bool:
    """Whether ``events[at]`` starts a call's first attempt right after its scheduling, with
    its completion right after it: the only event a replay's read may leave out."""
    event = events[at]
    before = events[at - 1] if at else None
    after = events[at + 1] if at + 1 < len(events) else None
    return (
        type(event) is ActivityStarted
        and event.attempt == 1
        and type(before) is ActivityScheduled
        and before.seq == event.seq
        and type(after) is ActivityCompleted
        and after.seq == event.seq
    )


def test_a_replays_read_leaves_out_only_starts_their_completion_follows() -> None:
    """The random histories above, read as a replay reads them, in random chunks: the long
    way's events in order, less some first starts whose completion follows them at once (none
    other), and the same refusal at the same line."""
    rng = random.Random(11)
    left_out = 0
    for _ in range(60):
        left_out += _read_as_a_replay(_history(rng, rng.choice([30, 150, 1200])), rng)
    assert left_out > 20  # the histories are refused early, most of them


def _read_as_a_replay(lines: list[bytes], rng: random.Random) -> int:
    """Read ``lines`` as a replay reads them, in random chunks, and again up to the first line
    the long way refuses: assert the long way's events in order, less first starts whose
    completion follows them at once, and the same refusal at the same line. How many starts
    were left out."""
    left_out = 0
    long_events, refusal = _long(lines)
    for part in (lines, lines[: len(long_events)]):
        cuts = sorted(rng.sample(range(1, len(part)), k=min(3, len(part) - 1)))
        events, error = _fast_for_replay(part, cuts)
        assert error == (refusal if part is lines else None)
        kept = iter(events)
        following = next(kept, None)
        for at, event in enumerate(long_events):
            if following == event:
                following = next(kept, None)
            elif error is not None and at == len(long_events) - 1:
                # A start held back just before the refused line is not appended.
                assert type(event) is ActivityStarted
                assert type(long_events[at - 1]) is ActivityScheduled
            else:
                assert _settled_start(long_events, at), (at, event)
                left_out += 1
        assert following is None  # each event read is one of the long way's, in order
    return left_out


#: A completion's duration and result as a line may hold them (raw JSON text, spaces kept):
#: right ones first (up to `_RIGHT`), then ones a builder refuses or that do not decode alone.
_DURATIONS = [b"0.1", b"0", b"1", b"4e-05", b"10000000000", b"1.0 ", b" 2.5", b"-0",
              b"-0.1", b"10000000001", b"1e400", b"true", b"null", b'"1"', b"01", b"1.",
              b"NaN", b"[1]", b"", b"1,"]  # fmt: skip
_RESULTS = [b"1", b'"x"', b'{"a":[1,2]}', b"null", b"[]", b' "a,\\"result\\":b" ',
            b'{"result":1}', b"1 ",
            b'1,"result":2', b'1,"x":2', b"", b"[", b'"\xff"', b"[" * 300 + b"]" * 300]  # fmt: skip
_RIGHT = 8


def _completion_variants(number: int, seq: int, ts: str, rng: random.Random) -> bytes:
    """The completion of call ``seq``'s first attempt as line ``number``: as the writer writes
    it, or off in one way or another (fields, their order, its time, duration or result)."""
    head = b'{"id":%d,"ts":"%b","type":"ActivityCompleted","seq":%d,"attempt":%d,"duration":'
    fields = [number, ts.encode(), seq, 1]
    kind = rng.randrange(18)  # 10 and above: as written
    if kind == 0:
        fields[0] = number + rng.choice([-1, 1, 10])
    elif kind == 1:
        fields[2] = seq + 1
    elif kind == 2:
        fields[3] = 2
    elif kind == 3:
        fields[1] = rng.choice(_TIMES).encode()
    elif kind == 4:
        head = head.replace(b'"id":%d', b'"id":0%d')
    elif kind == 5:
        head = head.replace(b'"duration":', b'"duration": ')
    duration = rng.choice(_DURATIONS[: _RIGHT if kind != 6 else None])
    result = rng.choice(_RESULTS[: _RIGHT if kind != 9 else None])
    return _signed_variant(head % tuple(fields) + duration + b',"result":' + result, kind)


def _signed_variant(body: bytes, kind: int) -> bytes:
    """The line of an object ``body`` (without its closing brace), signed as the writer signs
    whatever its bytes; with a field more (``kind`` 7) or a wrong checksum (8)."""
    if kind == 7:
        body += b',"extra":1'
    body += b"}"
    line = body[:-1] + CRC_TAIL % zlib.crc32(body)
    if kind == 8:  # right but for its checksum
        line = line[:-3] + (b"0" if line[-3:-2] != b"0" else b"1") + line[-2:]
    return line


def _with_variants(
    lines: list[bytes],
    rng: random.Random,
    kind: bytes,
    after: bytes,
    variants: Callable[[int, int, str, random.Random], bytes],
) -> list[bytes]:
    """``lines`` with every event of type ``kind`` that follows one of type ``after``
    replaced by one of ``variants`` (on the same line: the ids stay as they are)."""
    out = list(lines)
    for at in range(1, len(out)):
        if b'"%b"' % kind not in out[at] or b'"%b"' % after not in out[at - 1]:
            continue
        event = orjson.loads(out[at])
        out[at] = variants(at + 2, event["seq"], event["ts"], rng)
    return out


def _with_completion_variants(lines: list[bytes], rng: random.Random) -> list[bytes]:
    """``lines`` with every completion that follows a first attempt's start replaced by one
    of `_completion_variants`."""
    return _with_variants(
        lines, rng, b"ActivityCompleted", b"ActivityStarted", _completion_variants
    )


def test_a_replays_read_of_completions_after_first_starts_is_the_long_ways() -> None:
    """Random histories whose completions right after a first start are as written or off in
    any way (their head, time, duration, result, checksum, a field more), read as a replay
    reads them, in random chunks: the long way's events in order, less the first starts that
    their completion follows at once, and the same refusal at the same line."""
    rng = random.Random(23)
    read_fast = 0
    for _ in range(800):
        lines = _with_completion_variants(_history(rng, rng.choice([12, 40, 150])), rng)
        read_fast += _read_as_a_replay(lines, rng)
    assert read_fast > 200  # many completions pass, not only the refusals


def _times_around(ts: str) -> list[str]:
    """``ts`` (in the second 12:00:00), times later in that second and in the next, and
    ``ts`` off in one byte after its second: the times a line after ``ts``'s may carry."""
    return [ts, "2026-11-28T12:00:00.999999Z", "2026-11-28T12:00:01.000000Z"] + [
        ts[:at] + odd + ts[at + 1 :]
        for at in range(19, 27)
        for odd in ("a", "+", " ", "\u0663", "Z", "0")
    ]


def test_every_completion_after_a_first_start_reads_as_the_long_way_reads_it() -> None:
    """Each duration and result of `_DURATIONS` and `_RESULTS` with each other, and times
    that share the second of the start before them but are off after it, in a completion
    right after its call's first start: the same events, or the same refusal, as the long
    way (a replay's read leaving out the start only where the completion is read)."""
    start_ts = "2026-11-28T12:00:00.000100Z"
    times = _times_around(start_ts)
    head = b'{"id":4,"ts":"%b","type":"ActivityCompleted","seq":1,"attempt":1,"duration":'
    cases = [(d, r, start_ts.encode()) for d in _DURATIONS for r in _RESULTS]
    cases += [(b"0.1", b"1", ts.encode()) for ts in times]
    read_fast = 0
    for duration, result, ts in cases:
        body = head % ts + duration + b',"result":' + result + b"}"
        lines = [
            serialize(ActivityScheduled(id=2, ts=start_ts, seq=1, name="f", input={})),
            serialize(ActivityStarted(id=3, ts=start_ts, seq=1, attempt=1)),
            body[:-1] + CRC_TAIL % zlib.crc32(body),
        ]
        long_events, refusal = _long(lines)
        events, error = _fast_for_replay(lines, [])
        assert error == refusal, (duration, result, ts)
        if refusal is None:
            # The start may be kept (a line read the long way, as the first of its type in a
            # process is, keeps it), never lost.
            assert events in ([long_events[0], long_events[2]], long_events), (duration, result)
            read_fast += len(events) == 2
        else:  # the start before the refused line may be among the events appended or not
            assert events in (long_events[:1], long_events[:2]), (duration, result, ts)
    assert read_fast > 60


#: A scheduling's name and input as a line may hold them (raw JSON text, spaces kept): right
#: ones first (up to `_RIGHT_CALLS`), then ones a builder refuses or that do not decode alone.
_NAMES = [b'"f"', b'"g"', b'""', b'"f\\"', b'"a,\\"input\\":b"', b'"\\u00e9t\\u00e9"',
          b' "f" ', b'"f" ',
          b"1", b"null", b'["f"]', b"", b'"f', b'"f","input":1', b'"\xff"']  # fmt: skip
_INPUTS = [b"{}", b'{"x":1}', b'{"a":[1,{"b":null}]}', b' {"x":1} ', b'{"input":1}',
           b'{"x":"1,\\"crc\\":2"}', b'{"x":1,"x":2}', b"{}  ",
           b"[]", b"1", b"null", b'"{}"', b"", b'{"x":1},"y":2', b"{", b"[" * 300 + b"]" * 300,
           b"{" * 300 + b"}" * 300]  # fmt: skip
_RIGHT_CALLS = 8


def _scheduling_variants(number: int, seq: int, ts: str, rng: random.Random) -> bytes:
    """The scheduling of call ``seq`` as line ``number``: as the writer writes it, or off in
    one way or another (fields, their order, its time, name or input)."""
    head = b'{"id":%d,"ts":"%b","type":"ActivityScheduled","seq":%d,"name":'
    fields = [number, ts.encode(), seq]
    separator = b',"input":'
    kind = rng.randrange(19)  # 11 and above: as written
    if kind == 0:
        fields[0] = number + rng.choice([-1, 1, 10])
    elif kind == 1:
        fields[2] = seq + rng.choice([-1, 1])
    elif kind == 2:
        fields[1] = rng.choice(_TIMES).encode()
    elif kind == 3:
        head = head.replace(b'"id":%d', b'"id":0%d')
    elif kind == 4:
        head = head.replace(b'"name":', b'"name": ')
    elif kind == 5:
        head = head.replace(b'"seq":%d', b'"seq":%d.0')
    elif kind == 10:  # as long as the input's key: the name must be followed by that key
        separator = b',"Input":'
    name = rng.choice(_NAMES[: _RIGHT_CALLS if kind != 6 else None])
    value = rng.choice(_INPUTS[: _RIGHT_CALLS if kind != 9 else None])
    return _signed_variant(head % tuple(fields) + name + separator + value, kind)


def _with_scheduling_variants(lines: list[bytes], rng: random.Random) -> list[bytes]:
    """``lines`` with every scheduling that follows a completion replaced by one of
    `_scheduling_variants`."""
    return _with_variants(
        lines, rng, b"ActivityScheduled", b"ActivityCompleted", _scheduling_variants
    )


def test_schedulings_after_completions_read_the_fast_way_as_the_long_way() -> None:
    """Random histories whose schedulings right after a completion are as written or off in
    any way (their head, time, name, input, checksum, a field more), read in random chunks,
    keeping every event and as a replay reads them: the long way's events (less, for a
    replay, the first starts that their completion follows at once), the same refusal at
    the same line."""
    rng = random.Random(31)
    read_through = 0
    for _ in range(800):
        lines = _with_scheduling_variants(_history(rng, rng.choice([12, 40, 150])), rng)
        long = _long(lines)
        cuts = sorted(rng.sample(range(1, len(lines)), k=min(3, len(lines) - 1)))
        assert _fast(lines, cuts) == long
        _read_as_a_replay(lines, rng)
        read_through += sum(type(event) is ActivityScheduled for event in long[0][1:])
    assert read_through > 300  # many schedulings are read, not only the refusals


def test_every_scheduling_after_a_completion_reads_as_the_long_way_reads_it() -> None:
    """Each name and input of `_NAMES` and `_INPUTS` with each other, twice in a row (the
    second compared with the name before it), and times off after their second: the same
    events, or the same refusal, as the long way."""
    ts = "2026-11-28T12:00:00.000100Z"
    times = _times_around(ts)
    head = b'{"id":%d,"ts":"%b","type":"ActivityScheduled","seq":%d,"name":'

    def scheduling(number: int, seq: int, name: bytes, value: bytes, at: bytes) -> bytes:
        body = head % (number, at, seq) + name + b',"input":' + value + b"}"
        return body[:-1] + CRC_TAIL % zlib.crc32(body)

    def completion(number: int, seq: int) -> bytes:
        return serialize(
            ActivityCompleted(id=number, ts=ts, seq=seq, attempt=1, duration=0.1, result=1)
        )

    cases = [(n, v, ts.encode()) for n in _NAMES for v in _INPUTS]
    cases += [(b'"f"', b"{}", at.encode()) for at in times]
    for later in (b'"f"', b'"g"'):
        for name, value, at in cases:
            lines = [
                serialize(ActivityScheduled(id=2, ts=ts, seq=1, name="f", input={})),
                completion(3, 1),
                scheduling(4, 2, later, b"{}", ts.encode()),
                completion(5, 2),
                scheduling(6, 3, name, value, at),
                completion(7, 3),
                scheduling(8, 4, name, value, at),
            ]
            long = _long(lines)
            assert _fast(lines, []) == long, (name, value, at)
            assert _fast(lines, [5]) == long, (name, value, at)


def test_a_scheduling_past_the_largest_seq_is_refused_the_fast_way_as_the_long_way() -> None:
    from wfrun.events import LIMIT

    ts = "2026-11-28T12:00:00.000100Z"
    body = b'{"id":5,"ts":"%b","type":"ActivityScheduled","seq":%d,"name":"f","input":{}}' % (
        ts.encode(),
        LIMIT + 1,
    )
    lines = [
        serialize(ActivityScheduled(id=2, ts=ts, seq=LIMIT, name="f", input={})),
        serialize(ActivityStarted(id=3, ts=ts, seq=LIMIT, attempt=1)),
        serialize(ActivityCompleted(id=4, ts=ts, seq=LIMIT, attempt=1, duration=0.1, result=1)),
        body[:-1] + CRC_TAIL % zlib.crc32(body),
    ]
    long = _long(lines)
    assert long[1] is not None
    assert ":5: " in long[1]
    assert _fast(lines, []) == long
    assert _fast_for_replay(lines, []) == (long[0][::2], long[1])


#: Text a random JSON value may hold: quotes, backslashes, the input's key, non-ASCII.
_TEXTS = ["f", "fg", 'f"', "f\\", 'a,"input":b', "\u00e9", "\u2028", "\x85", "", "input", "crc"]
#: Between a random JSON value's tokens, now and then: JSON's spaces and others.
_SPACES = [b" ", b"\t", b"\r", b"\x0c", b"\xc2\xa0"]


def _json_text(rng: random.Random) -> bytes:
    """A JSON string as written, or escaped otherwise, or one that does not decode."""
    text = orjson.dumps(rng.choice(_TEXTS))
    odd = rng.randrange(20)
    if odd == 0:
        return text.replace(b"f", b"\\u0066")
    if odd == 1:
        return b'"\\ud800"'  # a lone surrogate
    if odd == 2:
        return b'"\xff"'
    return text


def _space(rng: random.Random) -> bytes:
    return rng.choice(_SPACES) if rng.random() < 0.05 else b""


def _json_value(rng: random.Random, depth: int = 0) -> bytes:
    """Random JSON text, spaces here and there, now and then off."""
    kind = rng.random() if depth < 3 else 0.0
    if kind < 0.3:
        scalars = [b"1", b"-0", b"0.5", b"1e400", b"null", b"true", b"NaN", b"01", b"1" * 20]
        return rng.choice(scalars) if rng.random() < 0.5 else _json_text(rng)
    if kind < 0.8:
        return _json_object(rng, depth)
    items = [
        _space(rng) + _json_value(rng, depth + 1) + _space(rng) for _ in range(rng.randrange(3))
    ]
    return b"[" + b",".join(items) + b"]"


def _json_object(rng: random.Random, depth: int = 0) -> bytes:
    """A random JSON object (see `_json_value`), now and then off."""
    items = [
        _space(rng)
        + _json_text(rng)
        + _space(rng)
        + b":"
        + _space(rng)
        + _json_value(rng, depth + 1)
        for _ in range(rng.randrange(4))
    ]
    text = b"{" + b",".join(items) + b"}"
    return text[:-1] if rng.random() < 0.02 else text


def _random_scheduling(
    number: int, seq: int, ts: str, rng: random.Random, names: list[bytes], *, wild: bool
) -> bytes:
    """Call ``seq``'s scheduling as line ``number``: its name often that of the line before
    (the last of ``names``). ``wild``: its name and input random JSON, its time one of
    `_TIMES`, its fields now and then reordered, one twice, one missing or one more, or its
    name's or input's key off in its last bytes; else a right one."""
    if names and rng.random() < 0.6:  # most often the name before (see `_SCHEDULED`)
        name = names[-1] if rng.random() < 0.8 else rng.choice(names)
    else:
        name = _json_text(rng) if wild and rng.random() < 0.85 else orjson.dumps(rng.choice(_TEXTS))
        name = rng.choice([b"", b"", b" "]) + name + rng.choice([b"", b"", b" "])
        names.append(name)
    if not wild:
        value = orjson.dumps(rng.choice([{}, {"x": 1}, {t: [t] for t in _TEXTS}]))
        body = b'{"id":%d,"ts":"%b","type":"ActivityScheduled","seq":%d,"name":%b,"input":%b}'
        body %= (number, ts.encode(), seq, name, value)
        return body[:-1] + CRC_TAIL % zlib.crc32(body)
    fields = [
        (b"id", b"%d" % number),
        (b"ts", orjson.dumps(ts if rng.random() < 0.8 else rng.choice(_TIMES))),
        (b"type", b'"ActivityScheduled"'),
        (b"seq", b"%d" % seq),
        (b"name", name),
        (b"input", _json_value(rng) if rng.random() < 0.2 else _json_object(rng)),
    ]
    odd = rng.randrange(16)
    if odd == 0:
        fields.append((b"extra", b"1"))
    elif odd == 1:
        fields.insert(rng.randrange(7), (b"name", _json_text(rng)))
    elif odd == 2:
        fields.insert(rng.randrange(7), (b"input", b"{}"))
    elif odd == 3:
        del fields[rng.choice([4, 5])]
    elif odd == 4:
        fields.insert(rng.randrange(7), (b"crc", b'"00000000"'))
    elif odd == 5:
        fields[3] = (b"seq", rng.choice([b"%d" % (seq + 1), b"%d.0" % seq, b"-0", b"0"]))
    elif odd == 6:
        fields[0], fields[1] = fields[1], fields[0]
    body = b"{" + b",".join(b'"%b":%b' % field for field in fields) + b"}"
    if odd == 7:  # the name's key or the input's off in its last bytes, or spaced
        key = rng.choice([b'"name":', b',"input":'])
        odd_key = key[:-2] + rng.choice([b'";', b'",', b"T:", b"\\u0020:", b'" :', b'"  '])
        body = body.replace(key, odd_key, 1)
    return body[:-1] + CRC_TAIL % zlib.crc32(body)


def test_random_schedulings_after_completions_read_the_fast_way_as_the_long_way() -> None:
    """Random histories of calls awaited one by one whose schedulings after a completion hold
    random JSON (spaces anywhere, escapes, the input's key in text, non-ASCII, undecodable
    text, other types) and names of the lines before, fields reordered, twice, missing or
    one more, read in random chunks, keeping every event and as a replay reads them: the
    long way's events, the same refusal at the same line."""
    rng = random.Random(41)
    read_through = 0
    for _ in range(1500):
        lines: list[bytes] = []
        names: list[bytes] = []
        rate = rng.choice([0.05, 0.2, 0.5])  # of wild schedulings
        ts = _TIMES[0]
        for seq in range(1, rng.choice([3, 10, 40]) + 1):
            number = len(lines) + 2
            if lines:
                ts = rng.choice(_TIMES[:4])
                wild = rng.random() < rate
                lines.append(_random_scheduling(number, seq, ts, rng, names, wild=wild))
            else:
                lines.append(serialize(ActivityScheduled(id=2, ts=ts, seq=1, name="f", input={})))
            lines.append(serialize(ActivityStarted(id=number + 1, ts=ts, seq=seq, attempt=1)))
            completed = ActivityCompleted(
                id=number + 2, ts=ts, seq=seq, attempt=1, duration=0.1, result=1
            )
            lines.append(serialize(completed))
        long = _long(lines)
        cuts = sorted(rng.sample(range(1, len(lines)), k=min(3, len(lines) - 1)))
        assert _fast(lines, cuts) == long
        _read_as_a_replay(lines, rng)
        read_through += sum(type(event) is ActivityScheduled for event in long[0][1:])
    assert read_through > 4000  # many schedulings are read, not only the refusals


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (b'{"a":' + b"[" * 254 + b"]" * 254 + b"}", True),  # 256 levels with the line's own
        (b'{"a":' + b"[" * 255 + b"]" * 255 + b"}", False),  # one level more
        (b'{"a":"' + b"[" * 300 + b'"}', True),  # brackets in text: no nesting at all
    ],
    ids=["at-the-limit", "past-the-limit", "brackets-in-text"],
)
def test_a_scheduling_after_a_completion_nested_past_the_limit_is_refused_as_the_long_way(
    value: bytes, read: bool
) -> None:
    """A scheduling's input nested as deep as a history may hold is read, one level deeper
    is refused, at that line and with the long way's words; brackets in a text are no
    nesting."""
    ts = "2026-11-28T12:00:00.000100Z"
    body = b'{"id":4,"ts":"%b","type":"ActivityScheduled","seq":2,"name":"f","input":%b}' % (
        ts.encode(),
        value,
    )
    lines = [
        serialize(ActivityScheduled(id=2, ts=ts, seq=1, name="f", input={})),
        serialize(ActivityCompleted(id=3, ts=ts, seq=1, attempt=1, duration=0.1, result=1)),
        body[:-1] + CRC_TAIL % zlib.crc32(body),
    ]
    long = _long(lines)
    assert (long[1] is None) == read
    assert long[1] is None or ":4: " in long[1]
    assert _fast(lines, []) == long
    assert _fast(lines, [2]) == long


@pytest.mark.parametrize("name", [b'"f"', b'"f["'], ids=["plain", "bracket-in-name"])
@pytest.mark.parametrize("depth", [256, 257])
def test_how_deep_a_line_may_nest_does_not_depend_on_brackets_in_its_text(
    name: bytes, depth: int
) -> None:
    """Objects and arrays nested 256 deep (the event, its input, and 254 arrays around a
    number) are read, 257 refused, whether or not a text of the line holds a bracket (which
    makes the reader walk the values instead of counting brackets)."""
    arrays = depth - 2
    value = b'{"x":' + b"[" * arrays + b"1" + b"]" * arrays + b"}"
    body = b'{"id":2,"ts":"2026-11-28T12:00:00.000100Z","type":"ActivityScheduled","seq":1,'
    body += b'"name":' + name + b',"input":' + value + b"}"
    line = body[:-1] + CRC_TAIL % zlib.crc32(body)
    if depth <= 256:
        assert parse_line(_PATH, 2, line, checksummed=True).seq == 1  # type: ignore[attr-defined]
    else:
        with pytest.raises(HistoryCorruptError, match="nest deeper than 256 levels"):
            parse_line(_PATH, 2, line, checksummed=True)


@pytest.mark.parametrize("kind", ["scheduling", "start", "completion"])
def test_a_line_past_the_largest_id_is_refused_the_fast_way_as_the_long_way(kind: str) -> None:
    """Each line a head compare reads (a scheduling after a completion, a first start, a
    completion after a start held back), as written but with the id after `LIMIT`: refused
    at that line, with the long way's words. (The reader is set at that id: a file of ten
    billion lines cannot be written here.)"""
    from wfrun.events import LIMIT

    ts = "2026-11-28T12:00:00.000100Z"
    before: Any
    if kind == "scheduling":
        before = ActivityCompleted(id=LIMIT, ts=ts, seq=1, attempt=1, duration=0.1, result=1)
        lines = [serialize(ActivityScheduled(id=LIMIT + 1, ts=ts, seq=2, name="f", input={}))]
    elif kind == "start":
        before = ActivityScheduled(id=LIMIT, ts=ts, seq=1, name="f", input={})
        lines = [serialize(ActivityStarted(id=LIMIT + 1, ts=ts, seq=1, attempt=1))]
    else:
        before = ActivityScheduled(id=LIMIT - 1, ts=ts, seq=1, name="f", input={})
        lines = [
            serialize(ActivityStarted(id=LIMIT, ts=ts, seq=1, attempt=1)),
            serialize(
                ActivityCompleted(id=LIMIT + 1, ts=ts, seq=1, attempt=1, duration=0.1, result=1)
            ),
        ]
    refusal = _long_from(before, lines)[1]
    assert refusal is not None
    assert f":{LIMIT + 1}: " in refusal
    for keep in (True, False):
        reader = LineReader(_PATH, _started(), keep_starts=keep)
        reader.number, reader.last = before.id, before
        with pytest.raises(HistoryCorruptError) as fast:
            reader.read(lines, [])
        assert str(fast.value) == refusal


@pytest.mark.parametrize("end", ["completion", "start", "failure", "damage"])
def test_a_start_held_back_at_a_chunks_end_is_kept_unless_its_completion_follows(end: str) -> None:
    """The line after a first start decides whether it is left out, in the next chunk or
    after the last (a history that ends with the start keeps it: the attempt is in flight)."""
    ts = "2026-11-28T12:00:00.000100Z"
    lines = [
        serialize(ActivityScheduled(id=2, ts=ts, seq=1, name="f", input={})),
        serialize(ActivityStarted(id=3, ts=ts, seq=1, attempt=1)),
    ]
    after = {
        "completion": serialize(
            ActivityCompleted(id=4, ts=ts, seq=1, attempt=1, duration=0.1, result=1)
        ),
        "failure": serialize(
            ActivityFailed(
                id=4,
                ts=ts,
                seq=1,
                attempt=1,
                duration=0.1,
                error={"type": "E", "message": "m"},
                retry_in=0.0,
            )
        ),
        "damage": b'{"id":4}',
    }
    if end in after:
        lines.append(after[end])
    long_events, refusal = _long(lines)
    events, error = _fast_for_replay(lines, [2])
    assert error == refusal
    if end == "completion":
        assert events == [long_events[0], long_events[2]]
    else:
        assert events == long_events
        assert type(events[1]) is ActivityStarted


def test_a_replay_counts_the_starts_its_read_left_out(tmp_path: Path) -> None:
    from wfrun.local.history import parse_history

    ts = "2026-11-28T12:00:00.000100Z"
    first = serialize(_started())
    lines = [
        first,
        serialize(ActivityScheduled(id=2, ts=ts, seq=1, name="f", input={})),
        serialize(ActivityStarted(id=3, ts=ts, seq=1, attempt=1)),
        serialize(ActivityCompleted(id=4, ts=ts, seq=1, attempt=1, duration=0.1, result=1)),
    ]
    data = b"\n".join(lines) + b"\n"
    kept = parse_history(_PATH, data)
    read = parse_history(_PATH, data, keep_starts=False)
    assert (len(kept.events), kept.left_out) == (4, 0)
    assert (len(read.events), read.left_out) == (3, 1)
    assert read.status == kept.status
    # Cut after the start: the attempt is in flight, and its start kept.
    cut = b"\n".join(lines[:3]) + b"\n"
    assert parse_history(_PATH, cut, keep_starts=False).events == parse_history(_PATH, cut).events


#: Every way a run ends, as the line of event ``number``.
_ENDS: list[Any] = [
    lambda number: WorkflowCompleted(id=number, ts=_TIMES[0], result=1),
    lambda number: WorkflowFailed(id=number, ts=_TIMES[0], error={"type": "E", "message": "m"}),
    lambda number: WorkflowContinuedAsNew(id=number, ts=_TIMES[0], input={}, run_id="r2"),
    lambda number: WorkflowTimedOut(id=number, ts=_TIMES[0], timeout=1.0),
    lambda number: WorkflowCanceled(id=number, ts=_TIMES[0], reason="r"),
]


@pytest.mark.parametrize("end", range(len(_ENDS)))
def test_a_line_after_a_runs_end_is_refused_the_fast_way_as_the_long_way(end: int) -> None:
    """An end (signed, valid) anywhere in a history, then more lines of every kind: refused at
    the line after the end, with the long way's words, wherever the chunks are cut (also right
    after the end, so that the next chunk starts past it)."""
    rng = random.Random(end)
    tried = 0
    for _ in range(20):
        lines = _history(rng, 40)  # ids 2, 3, 4…: the end takes the id of the line it replaces
        lines = lines[: len(_long(lines)[0])]  # up to any damage: what follows the end is valid
        if len(lines) < 3:
            continue
        at = rng.randrange(len(lines) - 1)
        lines[at] = serialize(_ENDS[end](at + 2))
        cuts = sorted({at + 1, *rng.sample(range(1, len(lines)), k=2)})
        long = _long(lines)
        assert long[1] is not None
        assert f":{at + 3}: " in long[1]
        assert "after the run ended" in long[1]
        assert _fast(lines, cuts) == long
        assert _fast(lines, []) == long
        tried += 1
    assert tried >= 10


def test_starts_after_ids_change_digits_without_a_scheduling_read_right_if_slower(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Holds only as speed: after ids change digits with no scheduling in between, the
    reader's idea of where the time stands lags by a digit (one fall-back per digit)."""
    from wfrun.events import _BUILDERS, line_builder

    built: list[object] = []
    builder = line_builder("ActivityStarted")
    assert builder is not None
    monkeypatch.setitem(_BUILDERS, "ActivityStarted", lambda obj: built.append(obj) or builder(obj))
    ts = "2026-11-28T12:00:00.000100Z"
    lines = [serialize(TimerFired(id=n, ts=ts, seq=n)) for n in range(2, 150)]
    lines += [
        serialize(ActivityScheduled(id=150, ts=ts, seq=999, name="f", input={})),
        serialize(ActivityStarted(id=151, ts=ts, seq=999, attempt=1)),
    ]
    events: list[Any] = []
    LineReader(_PATH, _started()).read(lines, events)
    assert events == _long(lines)[0]
    # Documented as a speed note, not a correctness failure: one line went the JSON way.
    assert len(built) <= 1


# -- the time of replayed steps, and results that no longer decode ---------------------------


@workflows.activity
async def agree_step(value: int) -> int:
    return value


@workflows.workflow.define(name="agree_clock")
class Clock:
    @workflows.workflow.entrypoint
    async def run(self) -> list[str]:
        seen: list[str] = []
        for i in range(3):
            await agree_step(i)  # replayed the fast way: its time left unparsed
        seen.append(workflows.workflow.now().isoformat())
        seen.append(repr(asyncio.get_running_loop().time()))
        await agree_step(3)
        seen.append(repr(asyncio.get_running_loop().time()))  # the loop first, then now()
        seen.append(workflows.workflow.now().isoformat())
        await agree_step(4)
        async with asyncio.timeout(3600):  # the loop's clock, read by asyncio
            await agree_step(5)
        await asyncio.wait_for(agree_step(6), timeout=3600)
        await agree_step(7)
        await asyncio.sleep(0.01)  # a timer from the time of an unparsed step
        seen.append(workflows.workflow.now().isoformat())
        await agree_step(8)
        seen.append(repr(asyncio.get_running_loop().time()))
        return seen


@pytest.mark.usefixtures("isolated")
def test_the_time_after_fast_replayed_steps_is_the_live_time() -> None:
    path = run_live(Clock, "clock")
    replay(path, Clock)  # a different time anywhere: a different result, or a refusal


@workflows.activity(name="agree_typed")
async def typed_v1(value: int) -> str:
    return "not a number"


@workflows.activity(name="agree_typed")
async def typed_v2(value: int) -> int:  # the code changed since: the result no longer decodes
    return 0


@workflows.workflow.define(name="agree_typed_v1")
class TypedV1:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        await agree_step(0)
        return str(await typed_v1(1))


@workflows.workflow.define(name="agree_typed_v2_fast")
class TypedV2Fast:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        await agree_step(0)
        return str(await typed_v2(1))


@workflows.workflow.define(name="agree_typed_v2_ordinary")
class TypedV2Ordinary:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        await agree_step(0)
        call = typed_v2(1)  # not awaited where it is made: the ordinary path
        return str(await call)


@pytest.mark.usefixtures("isolated")
def test_a_result_that_no_longer_decodes_is_put_back_and_reported_as_before() -> None:
    messages = []
    for workflow in (TypedV2Fast, TypedV2Ordinary):
        path = run_live(TypedV1, f"typed-{workflow.__name__}")
        as_workflow(path, workflow.__wfrun_workflow__.name)
        with pytest.raises(NonDeterminismError) as caught:
            replay(path, workflow)
        messages.append(str(caught.value).replace(workflow.__wfrun_workflow__.name, "W"))
    messages = [
        m.replace("typed-TypedV2Fast", "R").replace("typed-TypedV2Ordinary", "R") for m in messages
    ]
    assert messages[0] == messages[1]


@pytest.mark.usefixtures("isolated")
def test_a_replay_reports_every_event_of_the_history_with_the_starts_left_out() -> None:
    path = run_live(Clock, "counted")
    assert replay(path, Clock).events == path.read_bytes().count(b"\n")
