"""The template lines of a step's events are the very bytes the general serializer writes."""

from __future__ import annotations

import math
import random
from pathlib import Path

from wfrun.events import (
    ActivityCompleted,
    ActivityScheduled,
    ActivityStarted,
    Encoded,
    Event,
    new_line,
    scheduled_line,
    serialize,
    started_line,
)

TS = "2026-11-29T00:12:47.123456Z"
NAMES = ["noop", "fetch_user", 'q"uote', "back\\slash", "tab\there", "ünï", "\x85c1", "\u202eb"]
PAYLOADS = [b"1", b'{"i":1}', b'"\xc3\xbc"', b"[1,2,3]", b"null", b'{"a":"\\u0000"}']


def durations() -> list[float]:
    rng = random.Random(7)
    fixed = [0.0, -0.0, 1.0, 4.3e-05, 1e-06, 0.000001, 123456.789, 1e16, 9999999999.0, 0.1]
    return fixed + [round(rng.uniform(0, 10) ** rng.uniform(-6, 3), 6) for _ in range(200)]


def events() -> list[Event]:
    found: list[Event] = []
    for seq, name in enumerate(NAMES, start=1):
        for payload in PAYLOADS:
            found.append(
                ActivityScheduled(id=seq + 1, ts=TS, seq=seq, name=name, input=Encoded(payload))
            )
            found.append(ActivityScheduled(id=2, ts=TS, seq=seq, name=name, input={"i": 1}))
    found += [
        ActivityStarted(id=i, ts=TS, seq=i, attempt=a) for i in (1, 99, 10**12) for a in (1, 7)
    ]
    found.append(ActivityStarted(id=True, ts=TS, seq=1, attempt=1))  # type: ignore[arg-type]
    for duration in durations():
        for payload in PAYLOADS:
            found.append(
                ActivityCompleted(
                    id=5, ts=TS, seq=2, attempt=1, duration=duration, result=Encoded(payload)
                )
            )
    found.append(ActivityCompleted(id=5, ts=TS, seq=2, attempt=1, duration=3, result=Encoded(b"1")))
    found.append(ActivityCompleted(id=5, ts=TS, seq=2, attempt=1, duration=0.5, result=[1]))
    return found


def test_a_step_event_s_line_is_the_general_serializer_s() -> None:
    for event in events():
        assert new_line(event) == serialize(event) + b"\n", event


def test_non_finite_durations_go_the_general_way() -> None:
    for duration in (math.inf, math.nan):
        event = ActivityCompleted(
            id=5, ts=TS, seq=2, attempt=1, duration=duration, result=Encoded(b"1")
        )
        assert new_line(event) == serialize(event) + b"\n"


def test_a_started_event_written_from_its_fields_is_the_general_serializer_s() -> None:
    for event_id, seq, attempt in ((1, 1, 1), (99, 98, 7), (10**12, 5, 3)):
        event = ActivityStarted(id=event_id, ts=TS, seq=seq, attempt=attempt)
        assert started_line(event_id, TS, seq, attempt) == serialize(event) + b"\n"


def test_a_scheduled_event_written_from_its_fields_is_the_general_serializer_s() -> None:
    for seq, name in enumerate(NAMES, start=1):
        for payload in PAYLOADS:
            event = ActivityScheduled(id=seq + 1, ts=TS, seq=seq, name=name, input=Encoded(payload))
            line = scheduled_line(seq + 1, TS, seq, name, Encoded(payload))
            # Text that is not ASCII takes the general way (None): escapes to write.
            if name.isascii() and payload.isascii():
                assert line == serialize(event) + b"\n", event
            else:
                assert line is None


def test_a_writer_records_a_scheduling_from_its_fields_as_it_records_the_event(
    home: Path,
) -> None:
    from wfrun.clock import SystemClock
    from wfrun.local.store import RunStore

    from conftest import new_run_fields

    store = RunStore(home)
    lean, _ = store.create(new_run_fields("lean"), SystemClock())
    general, _ = store.create(new_run_fields("general"), SystemClock())
    try:
        for seq, name in enumerate(NAMES, start=1):
            for payload in PAYLOADS:
                ts = lean.append_scheduled(seq, name, Encoded(payload), TS)
                general.append(ActivityScheduled, TS, seq=seq, name=name, input=Encoded(payload))
                assert ts == TS
        assert lean.append_scheduled(99, "noop", Encoded(b"1")) > TS  # its own reading
        general.append(ActivityScheduled, seq=99, name="noop", input=Encoded(b"1"))
        lean.flush()
        general.flush()
    finally:
        lean.close()
        general.close()
    lean_lines = store.path("lean").read_bytes().splitlines()
    general_lines = store.path("general").read_bytes().splitlines()
    # Past the first event (each its own run): the same lines, the last's time aside.
    assert lean_lines[1:-1] == general_lines[1:-1]
    assert len(lean_lines) == 2 + len(NAMES) * len(PAYLOADS)
