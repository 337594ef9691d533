"""Reading a run's history file: every line parsed and checked, damage named, never repaired here.

Reading checks every line (JSON, a known event with valid fields, ids 1..N without gaps,
nothing after the end, the run it claims to be). A torn last line, which only a crash
mid-write can leave, is reported in `History.note`; the store cuts it off when a resume is
about to append (`wfrun.local.store.HistoryWriter.repair_tail`). Anything else is a
`HistoryCorruptError` naming the file and the line; the file is not touched.

A file may end in zero bytes: space the writer reserved ahead of its events (see
`wfrun.local.store`), left by a live run or by a crash before the trim at close. No event line
holds a zero byte (JSON escapes control characters), so the zeros at the end are no content:
every reader stops where they begin (`content_end`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from ..errors import HistoryCorruptError
from ..events import (
    _BUILDERS,
    _LINE_CHECKS,
    CHECKSUMMED,
    COMPLETED_HEAD,
    CRC_TAIL,
    EVENT_TYPES,
    FORMAT_VERSION,
    LIMIT,
    SCHEDULED_HEAD,
    STARTED_BODY,
    TERMINAL,
    ActivityCompleted,
    ActivityScheduled,
    ActivityStarted,
    Event,
    EventFormatError,
    WorkflowStarted,
    _is_timestamp,
    event_from_json,
    has_checksum,
    line_builder,
    line_check,
    verify_checksum,
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
            self.note = torn_note(self.path, len(self.torn_tail))


def torn_note(path: Path, size: int) -> str:
    """What a reader says about a torn tail of ``size`` bytes (see `History.note`)."""
    return (
        f"the last line of {path} was torn by a crash mid-write ({size} bytes, never "
        "acknowledged to the workflow): it is no event, and a resume cuts it off"
    )


#: A torn tail is the start of one event line cut short by a crash: it is at most one line
#: long (a payload within the run's limit, plus the event around it and a traceback).
_TORN_SLACK: Final = 1024 * 1024
_LINE_START: Final = b'{"id":'
#: Nesting a history can hold: wfrun encodes nothing deeper than orjson's limit of 254.
_MAX_DEPTH: Final = 256
#: How many bytes of lines are split off the file's bytes at a time while they are checked.
_CHUNK: Final = 1 << 20


def content_end(data: bytes) -> int:
    """Where the zero bytes that end ``data`` (if any) begin: the end of what was written."""
    end = len(data)
    block = 4096
    while end > 0:
        # Block by block from the end: a reserved tail can be megabytes long, and rstrip on
        # the whole file would copy it all.
        start = max(0, end - block)
        kept = len(data[start:end].rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
        block = min(block * 4, 1 << 20)
    return 0


def parse_history(
    path: Path,
    data: bytes,
    run_id: str | None = None,
    *,
    keep_stored: bool = True,
    keep_starts: bool = True,
) -> History:
    """Check and parse a whole history file's bytes (see the module docstring).

    ``keep_stored``: keep the file's bytes as `History.stored` (for ``history --json``); a
    resume or a replay, which need only the events, leaves it False and holds no copy.
    ``keep_starts``: False leaves out of `History.events` the start of a call's first attempt
    when the call's completion follows it at once (`History.left_out` counts them): every
    line is still checked, and a replay, which reads only the completion, replays the same.
    A resume keeps them (a start is where an attempt cut short by a crash goes on).
    """
    written = content_end(data)
    intact = data.rfind(b"\n", 0, written) + 1
    torn = data[intact:written]
    if not intact:
        raise HistoryCorruptError(
            f"{path}: the file holds no complete event"
            + (f" (only {len(torn)} bytes of a torn first line)" if torn else ""),
            path=str(path),
            line=1,
        )
    end = data.index(b"\n")
    started = parse_started(path, data[:end])
    check_started(path, started, run_id)
    # A chunk of lines at a time, each chunk cut from ``data`` only while it is checked: a
    # list of every line beside every event was a second copy of the file for the whole read.
    reader = LineReader(path, started, keep_starts=keep_starts)
    events: list[Event] = [started]
    start = end + 1
    while start < intact:
        end = data.rfind(b"\n", start, min(start + _CHUNK, intact))
        if end < 0:  # one line longer than a chunk
            end = data.index(b"\n", start)
        reader.read(data[start:end].split(b"\n"), events)
        start = end + 1
    reader.finish(events)
    number = reader.number
    if torn and not _could_be_torn(torn, started.max_payload):
        raise HistoryCorruptError(
            f"{path}:{number + 1}: the file ends with {len(torn):,} bytes that are no "
            "event (a crash can only leave the start of one line). Nothing was changed",
            path=str(path),
            line=number + 1,
        )
    return History(
        path=path,
        events=events,
        stored=data[:intact] if keep_stored else b"",
        torn_tail=torn,
        intact_size=intact,
        left_out=number - len(events),
    )


def check_started(path: Path, started: WorkflowStarted, run_id: str | None) -> None:
    """A first event this wfrun can read, of the run the file is named after."""
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


def check_next(path: Path, number: int, event: Event, previous: Event) -> None:
    """Event ``number`` must carry that id and follow an event that did not end the run."""
    if event.id != number:
        raise HistoryCorruptError(
            f"{path}:{number}: event id {event.id} where {number} was expected "
            "(ids run 1, 2, 3… without gaps: lines were lost, added or reordered)",
            path=str(path),
            line=number,
        )
    if previous.role == TERMINAL:
        raise HistoryCorruptError(
            f"{path}:{number}: {event.type} after the run ended with {previous.type}",
            path=str(path),
            line=number,
        )


def _could_be_torn(tail: bytes, max_payload: int) -> bool:
    if len(tail) > max_payload + _TORN_SLACK:
        return False
    if tail.startswith(b"\0"):
        # Reserved space whose first page lost a power cut, and a later one kept: the rest
        # of a line that was never synced, so never acknowledged.
        return True
    return _LINE_START.startswith(tail[: len(_LINE_START)])


class LineReader:
    """Every line after a history's first, checked a chunk of lines at a time.

    The checks are those of `parse_line` and `check_next`, in one pass per line: the
    checksum compared as written, the JSON decoded, the fields checked and the event built
    by the function generated for its type (`wfrun.events.line_builder`), its id and its
    place (not after the end) compared. Replay and ``history`` read every line of a history
    this way, and calling `parse_line` per line cost several times the checksum and the JSON
    decode themselves. The start of a call's first attempt, right after its scheduling, is
    read by writing it as the writer does and comparing (`_STARTED`); so are the heads of
    the completion that follows such a start (`_COMPLETED`) and of a scheduling right after
    a completion (`_SCHEDULED`), whose values alone are decoded. A line that is off in
    any way, or of an older format, goes the long way (`parse_line`, `check_next`), which
    raises `HistoryCorruptError` naming it.

    ``keep_starts`` False (a replay's read, see `parse_history`): such a start is built
    only if the next line is not its call's completion, and left out of the events if it
    is. Every step of a run that went straight through has one; building it was about a
    tenth of a replayed step, for an event the replay drops at once (`RecordedRun`).
    """

    __slots__ = ("_checksummed", "_held", "keep_starts", "last", "number", "path")

    def __init__(self, path: Path, started: WorkflowStarted, *, keep_starts: bool = True) -> None:
        self.path = path
        self.keep_starts = keep_starts
        #: The time of a first attempt's start read and not built yet (``keep_starts``
        #: False): the last line read, which `last` (its call's scheduling) comes before.
        self._held: bytes | None = None
        self._checksummed = started.format >= CHECKSUMMED
        #: The number of the last line checked (1: the first line, read apart).
        self.number = 1
        #: The last event read (after `check`, which builds none: the first, or the end).
        self.last: Event = started

    def read(self, lines: list[bytes], events: list[Event]) -> None:
        """Append the events of ``lines`` (the next lines, each without its newline) to
        ``events``; raises at the first damaged line, with the events before it appended
        (without ``keep_starts``, less a start held back just before it). Without
        ``keep_starts``, a start held at the last line is appended by the next call or by
        `finish`."""
        number, last = self.number, self.last
        # Whether the run ended (at `last`): only the long way reads an end (`line_builder`
        # makes no builder for one), so only it has to set this.
        ended = last.role == TERMINAL
        fast = self._checksummed
        keep = self.keep_starts
        held = self._held
        builders = _BUILDERS
        append = events.append
        crc32 = zlib.crc32
        loads = orjson.loads
        new = _NEW
        #: The time to the second of the last line read by a head compare (`_time_second`).
        second = b""
        #: The name of the call last scheduled by `_SCHEDULED`'s way, as written (with the
        #: `_INPUT` after it) and as text: a valid pair from the start (the empty name).
        named_input, name_text = b'""' + _INPUT, ""
        # Where the time starts in a line read by a head compare (after the id's digits),
        # and the first id with one digit more.
        at, tens = 13 + len(str(number + 1)), 10 ** len(str(number + 1))
        for line in lines:
            number += 1
            event: Any = None  # an Event, or None
            cut = len(line) - _CRC_LENGTH
            if fast and cut > 0:
                crc = crc32(b"}", crc32(line[:cut]))
                if held is None and last.__class__ is ActivityScheduled:
                    # The line after a call's scheduling is, as the writer writes it, the
                    # start of its first attempt: read by writing it (see `_STARTED`).
                    if number >= tens:  # one digit more in the id: the time moves along
                        at, tens = at + 1, tens * 10
                    ts = line[at : at + 27]
                    if line == _STARTED % (number, ts, last.seq, 1, crc) and number <= LIMIT:
                        head = ts[:20]
                        if head != second:
                            second = _time_second(ts)
                        if head == second and ts[20:26].isdigit() and ts[26] == _Z:
                            if not keep:  # checked: built only if the next line needs it
                                held = ts
                                continue
                            # `_first_start`, inline: a frame less a step.
                            event = new(ActivityStarted)
                            event.id = number
                            event.ts = ts.decode()
                            event.type = "ActivityStarted"
                            event.seq = last.seq
                            event.attempt = 1
                elif held is not None:
                    # The line after a start held back is, as the writer writes it, its
                    # call's completion: read by writing its head and comparing, the
                    # duration and the result decoded alone (see `_COMPLETED`).
                    if number >= tens:
                        at, tens = at + 1, tens * 10
                    ts = line[at : at + 27]
                    seq = last.seq  # type: ignore[attr-defined]  # an ActivityScheduled
                    written = _COMPLETED % (number, ts, seq, 1)
                    if (
                        line.startswith(written)
                        and line[cut:] == CRC_TAIL % crc
                        and number <= LIMIT
                        and (cut < _MAX_DEPTH or line.count(b"[") + line.count(b"{") <= _MAX_DEPTH)
                    ):
                        head = ts[:20]
                        if head != second:
                            second = _time_second(ts)
                        middle = line.find(_RESULT, len(written), cut)
                        if head == second and ts[20:26].isdigit() and ts[26] == _Z and middle > 0:
                            try:
                                duration = loads(line[len(written) : middle])
                                result = loads(line[middle + _RESULT_LENGTH : cut])
                            except ValueError:
                                pass
                            else:
                                if duration.__class__ in _SECONDS and 0 <= duration <= LIMIT:
                                    # The start held back is left out: its completion
                                    # follows (built inline, as `_first_start` is: a frame
                                    # less a step).
                                    event = new(ActivityCompleted)
                                    event.id = number
                                    event.ts = ts.decode()
                                    event.type = "ActivityCompleted"
                                    event.seq = seq
                                    event.attempt = 1
                                    event.duration = duration
                                    event.result = result
                                    append(event)
                                    last = event
                                    held = None
                                    continue
                elif last.__class__ is ActivityCompleted:
                    # A call scheduled after the previous call completed, as a workflow that
                    # awaits its calls one by one writes it: read by writing its head with
                    # the next seq and comparing, the name and the input decoded alone (see
                    # `_SCHEDULED`).
                    if number >= tens:
                        at, tens = at + 1, tens * 10
                    ts = line[at : at + 27]
                    seq = last.seq + 1
                    written = _SCHEDULED % (number, ts, seq)
                    if (
                        line.startswith(written)
                        and line[cut:] == CRC_TAIL % crc
                        and number <= LIMIT
                        and seq <= LIMIT
                        and (cut < _MAX_DEPTH or line.count(b"[") + line.count(b"{") <= _MAX_DEPTH)
                    ):
                        head = ts[:20]
                        if head != second:
                            second = _time_second(ts)
                        named = len(written)
                        if line.startswith(named_input, named):
                            name: Any = name_text  # the call before's name, as most often
                            given = named + len(named_input)
                        else:
                            given = line.find(_INPUT, named, cut)
                            try:
                                name = loads(line[named:given]) if given > 0 else None
                            except ValueError:
                                name = None
                            given += _INPUT_LENGTH
                            if name.__class__ is str:
                                named_input, name_text = line[named:given], name
                        if (
                            head == second
                            and ts[20:26].isdigit()
                            and ts[26] == _Z
                            and name.__class__ is str
                        ):
                            try:
                                value = loads(line[given:cut])
                            except ValueError:
                                value = None
                            if value.__class__ is dict:
                                # Built inline, as `_first_start` is: a frame less a step.
                                event = new(ActivityScheduled)
                                event.id = number
                                event.ts = ts.decode()
                                event.type = "ActivityScheduled"
                                event.seq = seq
                                event.name = name
                                event.input = value
                                append(event)
                                last = event
                                continue
                # `_intact` and the depth test of `parse_line`, inline (a call per line
                # counts); the checksum field compared whole, as it would be written.
                if (
                    event is None
                    and line[cut:] == CRC_TAIL % crc
                    and (cut < _MAX_DEPTH or line.count(b"[") + line.count(b"{") <= _MAX_DEPTH)
                ):
                    # One try for every way the fast path can fail: not JSON (a ValueError),
                    # not an object or a type that is no text (TypeError), no type or one
                    # without a builder yet (LookupError), no builder at all (None: a
                    # TypeError). The long way below then names what is wrong, or compiles
                    # the type's builder.
                    try:
                        obj = loads(line)
                        event = builders[obj["type"]](obj)  # type: ignore[misc]
                    except (ValueError, LookupError, TypeError):
                        pass
            if held is not None:
                # The start before this line: left out if this line completes its call (read
                # the fast way, so its id is checked next), else kept in its place.
                # (`last` is its call's scheduling: an ActivityScheduled.)
                seq = last.seq  # type: ignore[attr-defined]
                if event is None or event.__class__ is not ActivityCompleted or event.seq != seq:
                    last = _first_start(number - 1, held, seq)
                    append(last)
                held = None
            if event is None or event.id != number or ended:
                event = self._long_way(line, number, last)
                ended = event.role == TERMINAL
            append(event)
            last = event
        self.number, self.last, self._held = number, last, held

    def finish(self, events: list[Event]) -> None:
        """After the last line: a start still held (the history's last line) is appended."""
        if self._held is not None:
            last = self.last
            assert isinstance(last, ActivityScheduled)
            self.last = _first_start(self.number, self._held, last.seq)
            events.append(self.last)
            self._held = None

    def _long_way(self, line: bytes, number: int, last: Event) -> Event:
        """Line ``number`` checked by `parse_line` and `check_next` (raising what they say),
        and its type's builder made, so that the type's next lines go `read`'s fast way."""
        event = parse_line(self.path, number, line, checksummed=self._checksummed)
        check_next(self.path, number, event, last)
        if event.type not in _BUILDERS:
            line_builder(event.type)
        return event

    def check(self, lines: list[bytes]) -> None:
        """Check ``lines`` as `read` does, without building their events (for ``history
        --json``, which copies the lines); raises at the first damaged line."""
        number, previous = self.number, self.last
        fast = self._checksummed
        checks = _LINE_CHECKS
        crc32 = zlib.crc32
        loads = orjson.loads
        terminal = _TERMINAL_TYPES
        for line in lines:
            number += 1
            kind = None
            cut = len(line) - _CRC_LENGTH
            # The same inline test as `read`'s: as one shared function it made reading ~4 %
            # slower (a call per line), measured.
            if (
                fast
                and previous.role != TERMINAL
                and cut > 0
                and line[cut : cut + 8] == _CRC_FIELD
                and line[-2:] == b'"}'
                and line[cut + 8 : cut + 16] == b"%08x" % crc32(b"}", crc32(line[:cut]))
                and (cut < _MAX_DEPTH or line.count(b"[") + line.count(b"{") <= _MAX_DEPTH)
            ):
                try:
                    obj = loads(line)
                except orjson.JSONDecodeError:
                    obj = None
                if type(obj) is dict:
                    kind = obj.get("type")
                    if type(kind) is str:
                        valid = checks.get(kind) or line_check(kind)
                        if valid is None or not valid(obj) or obj["id"] != number:
                            kind = None
                    else:
                        kind = None
            if kind is None:
                event = parse_line(self.path, number, line, checksummed=self._checksummed)
                check_next(self.path, number, event, previous)
                previous = event
            elif kind in terminal:
                # Only what follows the end needs an event before it (to be refused with).
                previous = parse_line(self.path, number, line, checksummed=True)
            self.number = number
        self.last = previous


#: The start of a call's first attempt, as the writer writes it (`wfrun.events.STARTED_BODY`):
#: the event's id, time, the call's seq, its attempt (1), the checksum. The line after a
#: call's scheduling is read by writing this line from the line's number, the scheduled
#: call's seq and the time where it stands in the line, and comparing: the outcome of
#: decoding and checking it, without the JSON decode and the builder (about a third of that
#: line's cost). Where they are equal and the time is checked (`_time_second`), the line is
#: exactly the JSON object
#: ``{"id": number, "ts": time, "type": "ActivityStarted", "seq": seq, "attempt": 1, "crc":
#: ...}`` (the time holds no quote, backslash or control character), its checksum right (it
#: was computed from the line), and each field valid: ``number`` is 2 or more (and compared
#: with `LIMIT`), ``seq`` is that of the event before, read and checked already. A line that
#: differs in any byte, or whose time is not one the writer writes, goes the ordinary way.
_STARTED: Final = STARTED_BODY + CRC_TAIL
#: The completion of a call's first attempt, as the writer writes it, up to its duration
#: (`wfrun.events.COMPLETED_HEAD`): the event's id, time, the call's seq and its attempt (1).
#: The line after a start held back (`LineReader`) is read by writing this head from the
#: line's number, the call's seq and the time where it stands in the line, comparing, and
#: decoding only what follows it: the duration up to the first `_RESULT`, and the result up to
#: the checksum field (compared as written). Where the head is equal, the time checked
#: (`_time_second`), the duration a JSON number in range and the result a JSON value alone,
#: the line is exactly the JSON object ``{"id": number, "ts": time, "type":
#: "ActivityCompleted", "seq": seq, "attempt": 1, "duration": ..., "result": ..., "crc": ...}``
#: (a number holds no ``,"result":``, and a JSON value alone cannot end early): what its
#: builder would check and build, without the decode of the whole line into a dict and the
#: builder's checks of what the head already fixed (about 2,400 of a replayed step's ~92,000
#: instructions, callgrind). A line that differs goes the ordinary way.
_COMPLETED: Final = COMPLETED_HEAD
#: A call's scheduling, as the writer writes it, up to its name (`wfrun.events.SCHEDULED_HEAD`):
#: the event's id, time and the call's seq. The line after a completion is read by writing
#: this head from the line's number, the next seq (the completed call's, plus one) and the
#: time where it stands in the line, comparing, and decoding only what follows it: the name
#: up to the first `_INPUT` (or, most often, the name of the call scheduled before, compared
#: as it was written), and the input up to the checksum field (compared as written). Where
#: the head is equal, the time checked (`_time_second`), the name a JSON string and the
#: input a JSON object alone, the line is exactly the JSON object ``{"id": number, "ts":
#: time, "type": "ActivityScheduled", "seq": seq, "name": ..., "input": ..., "crc": ...}``:
#: a JSON string holds ``"`` only escaped, so no ``,"input":``, and a JSON value alone
#: cannot end early. That is what its builder would check and build, without the decode of
#: the whole line into a dict and the builder's checks of what the head already fixed. A
#: line that differs goes the ordinary way.
_SCHEDULED: Final = SCHEDULED_HEAD
_INPUT: Final = b',"input":'
_INPUT_LENGTH: Final = len(_INPUT)
_RESULT: Final = b',"result":'
_RESULT_LENGTH: Final = len(_RESULT)
#: The JSON types a duration may have (`wfrun.events` reads ``float`` as int or float).
_SECONDS: Final[frozenset[Any]] = frozenset((int, float))
#: The last byte of a time as the writer writes it; compared as an int (``ts[26]``): a
#: slice of it, at each line read by a head compare, cost a step about 1 %. (Each time so
#: compared was cut from a line that holds it and more: all of its 27 bytes are there.)
_Z: Final = ord("Z")
#: What a time `_time_second` accepts is made of.
_TIME_BYTES: Final = b"0123456789-:.TZ"


def _time_second(ts: bytes) -> bytes:
    """The first 20 bytes of ``ts`` (to the second, and the dot) if ``ts`` is a time as the
    writer writes it (`wfrun.events.format_ts`: 27 bytes, microseconds, ``Z``) that a history
    may hold (`wfrun.events._is_timestamp`); else b"" (matching nothing).

    Any other 6 digits and ``Z`` after those 20 bytes are then such a time too: the reader
    checks once per second of history what ``fromisoformat`` would check for every event.
    """
    if (
        len(ts) != 27
        or ts.translate(None, _TIME_BYTES)
        or ts[19:20] != b"."
        or not ts[20:26].isdigit()
        or ts[26:] != b"Z"
        or not _is_timestamp(ts.decode())
    ):
        return b""
    return ts[:20]


_NEW: Final = object.__new__


def _first_start(number: int, ts: bytes, seq: int) -> ActivityStarted:
    """The event of a `_STARTED` line that `LineReader.read` checked."""
    event = _NEW(ActivityStarted)
    event.id = number
    event.ts = ts.decode()
    event.type = "ActivityStarted"
    event.seq = seq
    event.attempt = 1
    return event


#: The types of the events that end a run.
_TERMINAL_TYPES: Final = frozenset(
    name for name, cls in EVENT_TYPES.items() if cls.role == TERMINAL
)


def parse_started(path: Path, line: bytes) -> WorkflowStarted:
    """The first line: a `WorkflowStarted` with id 1, checksummed exactly when its format is."""
    started = parse_line(path, 1, line, checksummed=None)
    problem = None
    if not isinstance(started, WorkflowStarted):
        problem = f"the first event is {started.type}, not WorkflowStarted"
    elif started.id != 1:
        problem = f"the first event has id {started.id}, not 1"
    elif (started.format >= CHECKSUMMED) != has_checksum(line):
        problem = f"a history of format {started.format} whose first line " + (
            "has no checksum" if started.format >= CHECKSUMMED else "has a checksum"
        )
    if problem is not None:
        raise HistoryCorruptError(
            f"{path}:1: {problem}; the history is damaged. Nothing was changed",
            path=str(path),
            line=1,
        )
    assert isinstance(started, WorkflowStarted)
    return started


def parse_line(path: Path, number: int, line: bytes, *, checksummed: bool | None) -> Event:
    """One line as an event, checked; ``checksummed`` None: as the line itself says (line 1)."""
    if checksummed and _intact(line):
        # The common case in one pass (checksum, JSON, fields); anything off goes the long way
        # below, which names the problem.
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
        else:
            # A line no longer than the limit cannot nest deeper: no need to count.
            if type(obj) is dict and (
                len(line) <= _MAX_DEPTH or line.count(b"[") + line.count(b"{") <= _MAX_DEPTH
            ):
                obj.pop("crc", None)
                try:
                    event = event_from_json(obj)
                except (EventFormatError, TypeError):
                    pass
                else:
                    if not isinstance(event, WorkflowStarted) or event.format >= CHECKSUMMED:
                        return event
    where = f"{path}:{number}" if number else f"{path} (last line)"
    try:
        if checksummed is None:
            checksummed = has_checksum(line)
        verify_checksum(line, checksummed=checksummed)
    except EventFormatError as exc:
        raise HistoryCorruptError(
            f"{where}: {exc}; the history is damaged. Nothing was changed: restore the file "
            "from a backup, or start a new run",
            path=str(path),
            line=number,
        ) from None
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
        if checksummed and isinstance(obj, dict):
            obj.pop("crc", None)  # verified above; not a field of the event
        if line.count(b"[") + line.count(b"{") > _MAX_DEPTH:  # only then can it be too deep
            _check_depth(obj)
        event = event_from_json(obj)
        if checksummed and isinstance(event, WorkflowStarted) and event.format < CHECKSUMMED:
            raise EventFormatError(f"a checksum in a history of format {event.format}")
        return event
    except (EventFormatError, TypeError) as exc:
        raise HistoryCorruptError(
            f"{where}: not a valid event: {exc}. Nothing was changed",
            path=str(path),
            line=number,
        ) from None


def _intact(line: bytes) -> bool:
    """Whether ``line`` ends with a checksum field that matches it (see `verify_checksum`)."""
    # Called for every line of every replay: slices of ``line`` itself, no tail copy and no
    # memoryview (whose setup cost more than copying a line this short).
    cut = len(line) - _CRC_LENGTH
    if cut <= 0 or line[cut : cut + 8] != _CRC_FIELD or line[-2:] != b'"}':
        return False
    crc = zlib.crc32(b"}", zlib.crc32(line[:cut]))
    # Compared as written (lower-case hex, 8 digits): no parsing, and "+1f" cannot pass.
    return line[cut + 8 : cut + 16] == b"%08x" % crc


_CRC_FIELD: Final = b',"crc":"'
_CRC_LENGTH: Final = len(b',"crc":"00000000"}')


def _check_depth(value: object) -> None:
    # Objects and arrays count, as in the count of brackets that spares most lines this walk
    # (no more brackets than `_MAX_DEPTH`: no deeper nesting); a value inside the deepest
    # has no level of its own.
    level: list[tuple[object, int]] = [(value, 1)]
    while level:
        item, depth = level.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > _MAX_DEPTH:
            raise EventFormatError(f"its values nest deeper than {_MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item
        level.extend((child, depth + 1) for child in children)
