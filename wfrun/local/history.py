"""Reading a run's history file: every line parsed and checked, damage named, never repaired here.

Reading checks every line (JSON, a known event with valid fields, ids 1..N without gaps,
nothing after the end, the run it claims to be). A torn last line, which only a crash
mid-write can leave, is reported in `History.note`; the store cuts it off when a resume is
about to append (`wfrun.local.store.HistoryWriter.repair_tail`). Anything else is a
`HistoryCorruptError` naming the file and the line; the file is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from ..errors import HistoryCorruptError
from ..events import (
    FORMAT_VERSION,
    TERMINAL,
    Event,
    EventFormatError,
    WorkflowStarted,
    event_from_json,
)
from ..runs import RunHistory


@dataclass(slots=True, kw_only=True)
class History(RunHistory):
    """A run's history as read from its file, and what a torn tail held (if anything)."""

    path: Path
    torn_tail: bytes = b""
    intact_size: int = 0

    def __post_init__(self) -> None:
        super(History, self).__post_init__()
        if self.torn_tail:
            self.note = (
                f"the last line of {self.path} was torn by a crash mid-write "
                f"({len(self.torn_tail)} bytes, never acknowledged to the workflow); it was cut off"
            )


def parse_history(path: Path, data: bytes, run_id: str | None = None) -> History:
    """Check and parse a whole history file's bytes (see the module docstring)."""
    intact = data.rfind(b"\n") + 1
    torn = data[intact:]
    lines = data[:intact].split(b"\n")[:-1]
    if not lines:
        raise HistoryCorruptError(
            f"{path}: the file holds no complete event"
            + (f" (only {len(torn)} bytes of a torn first line)" if torn else ""),
            path=str(path),
            line=1,
        )
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        event = parse_line(path, number, line)
        if event.id != number:
            raise HistoryCorruptError(
                f"{path}:{number}: event id {event.id} where {number} was expected "
                "(ids run 1, 2, 3… without gaps: lines were lost, added or reordered)",
                path=str(path),
                line=number,
            )
        if events and events[-1].role == TERMINAL:
            raise HistoryCorruptError(
                f"{path}:{number}: {event.type} after the run ended with {events[-1].type}",
                path=str(path),
                line=number,
            )
        events.append(event)
    started = events[0]
    if not isinstance(started, WorkflowStarted):
        raise HistoryCorruptError(
            f"{path}:1: the first event is {started.type}, not WorkflowStarted",
            path=str(path),
            line=1,
        )
    if started.format > FORMAT_VERSION:
        raise HistoryCorruptError(
            f"{path}:1: history format {started.format} was written by wfrun "
            f"{started.wfrun_version}; this wfrun reads format {FORMAT_VERSION} and older: "
            "upgrade wfrun",
            path=str(path),
            line=1,
        )
    if run_id is not None and started.run_id != run_id:
        raise HistoryCorruptError(
            f"{path}:1: the file holds run {started.run_id!r}, not {run_id!r} (renamed by hand?)",
            path=str(path),
            line=1,
        )
    return History(
        path=path, events=events, stored=data[:intact], torn_tail=torn, intact_size=intact
    )


def parse_line(path: Path, number: int, line: bytes) -> Event:
    where = f"{path}:{number}" if number else f"{path} (last line)"
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise HistoryCorruptError(
            f"{where}: not valid JSON ({exc}); the history is damaged. Nothing was changed: "
            "restore the file from a backup, or start a new run",
            path=str(path),
            line=number,
        ) from None
    try:
        return event_from_json(obj)
    except (EventFormatError, TypeError) as exc:
        raise HistoryCorruptError(
            f"{where}: not a valid event: {exc}. Nothing was changed",
            path=str(path),
            line=number,
        ) from None
