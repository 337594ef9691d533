"""The template lines of a step's events are the very bytes the general serializer writes."""

from __future__ import annotations

import math
import random

from wfrun.events import (
    ActivityCompleted,
    ActivityScheduled,
    ActivityStarted,
    Encoded,
    Event,
    new_line,
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
