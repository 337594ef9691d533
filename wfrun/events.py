"""The history's event types, defined once for the writer, the replayer and the renderer.

A run's history is a sequence of these events, one JSON object per line. Every event has
``id`` (1, 2, 3, … without gaps), ``ts`` (UTC, ISO 8601) and ``type``. Events that belong to a
command of the workflow carry ``seq``: the command's number in the run, in the order the
workflow code issued its commands. ``seq`` is how replay pairs today's code with the history.

Events come in four roles, which is all the replayer needs to know about them:

- *command* events record what the workflow code asked for (``ActivityScheduled``,
  ``TimerStarted``, ``MarkerRecorded``); replay checks that today's code asks for the same;
- *resolution* events deliver an outcome to the workflow (``ActivityCompleted``, a final
  ``ActivityFailed``/``ActivityTimedOut``, ``TimerFired``), in history order;
- *bookkeeping* events tell the story without reaching the workflow (attempts, heartbeats,
  retries, resumes, cancellations);
- *terminal* events end the run.

Field values are JSON. Payloads (inputs, results) are the encoded values of `wfrun.payload`.

From format 2, every line ends with ``"crc":"xxxxxxxx"``: the CRC-32 of the line as it would be
without that field. A flipped bit or an edited line is then damage, named with its line
number, instead of a plausible event replayed as truth. Format 1 lines have no checksum and
stay readable.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
import typing
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import orjson

#: The largest number of seconds (about 317 years) or bytes a history holds.
LIMIT: Final = 10_000_000_000

#: Bumped when a change would make an older wfrun misread a history; older formats stay readable.
FORMAT_VERSION: Final = 3
#: The first format whose lines carry a checksum.
CHECKSUMMED: Final = 2

#: Roles, see the module docstring.
COMMAND: Final = "command"
RESOLUTION: Final = "resolution"
BOOKKEEPING: Final = "bookkeeping"
TERMINAL: Final = "terminal"


class Encoded(bytes):
    """A payload already encoded as JSON, held in an event: written verbatim, never re-encoded.

    Events read back from a file hold plain JSON values instead; `wfrun.payload.raw` gives the
    bytes of either.
    """

    __slots__ = ()


def _verbatim(value: Any) -> Any:
    if type(value) is Encoded:
        return orjson.Fragment(bytes(value))
    raise TypeError(type(value).__qualname__)


def serialize(event: Event) -> bytes:
    """The event's line in the history file (with its checksum), without the newline."""
    if type(event) is RunBlocked and event.child is None:
        # A run's own bug: written as before ``child`` existed, which older readers refuse.
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        del fields["child"]
        return with_checksum(orjson.dumps(fields, default=_verbatim))
    return with_checksum(orjson.dumps(event, default=_verbatim))


def new_line(event: Event) -> bytes:
    """`serialize`'s line and its newline, for an event the writer has just made (its ``ts``
    from `format_ts`).

    The events of every step (scheduled, started, completed) are written from a template:
    the same bytes as orjson writes for them, at half the cost. Any value the template does
    not take as it is (not an int where one is expected, a payload not yet encoded, text
    that is not ASCII) goes the general way.
    """
    template = _TEMPLATES.get(type(event))
    if template is not None:
        line = template(event)
        if line is not None:
            return line
    return serialize(event) + b"\n"


#: The checksum field as the writer ends every line of format 2 with it (``% crc``).
CRC_TAIL: Final = b',"crc":"%08x"}'
_SIGNED: Final = b"%b" + CRC_TAIL + b"\n"


def _signed(body: bytes) -> bytes:
    # ``body``: the object without its closing brace, ASCII (nothing for `with_checksum` to
    # escape); the checksum is that of the object as it would be without the field.
    return _SIGNED % (body, zlib.crc32(b"}", zlib.crc32(body)))


def _scheduled_line(event: ActivityScheduled) -> bytes | None:
    payload: Any = event.input  # annotated as read back (a dict); Encoded as the writer holds it
    if type(event.id) is int and type(event.seq) is int and type(payload) is Encoded:
        return scheduled_line(event.id, event.ts, event.seq, event.name, payload)
    return None


#: An ActivityScheduled line as the writer writes it, up to its name (``% (id, ts, seq)``);
#: the name, ``,"input":``, the input and the checksum field follow. A reader compares lines
#: with it.
SCHEDULED_HEAD: Final = b'{"id":%d,"ts":"%b","type":"ActivityScheduled","seq":%d,"name":'
_SCHEDULED_BODY: Final = SCHEDULED_HEAD + b'%b,"input":%b'


def scheduled_line(event_id: int, ts: str, seq: int, name: str, payload: Encoded) -> bytes | None:
    """The line of an ActivityScheduled event from its fields (ints, ``ts`` from `format_ts`,
    the input encoded), as `new_line` writes it; None if it takes the general way (text that
    is not ASCII): for a writer that needs no event object."""
    body = _SCHEDULED_BODY % (
        event_id,
        ts.encode(),
        seq,
        orjson.dumps(name),
        payload,
    )
    return _signed(body) if body.isascii() else None


def _started_line(event: ActivityStarted) -> bytes | None:
    if type(event.id) is int and type(event.seq) is int and type(event.attempt) is int:
        return started_line(event.id, event.ts, event.seq, event.attempt)
    return None


#: An ActivityStarted line as the writer writes it, up to its checksum field (``% (id, ts,
#: seq, attempt)``): `started_line` writes it, and a reader compares lines with it.
STARTED_BODY: Final = b'{"id":%d,"ts":"%b","type":"ActivityStarted","seq":%d,"attempt":%d'


def started_line(event_id: int, ts: str, seq: int, attempt: int) -> bytes:
    """The line of an ActivityStarted event from its fields (ints, and ``ts`` from
    `format_ts`), as `new_line` writes it: for a writer that needs no event object."""
    return _signed(STARTED_BODY % (event_id, ts.encode(), seq, attempt))


#: An ActivityCompleted line as the writer writes it, up to its duration (``% (id, ts, seq,
#: attempt)``); the duration, ``,"result":``, the result and the checksum field follow. A
#: reader compares lines with it.
COMPLETED_HEAD: Final = (
    b'{"id":%d,"ts":"%b","type":"ActivityCompleted","seq":%d,"attempt":%d,"duration":'
)
_COMPLETED_BODY: Final = COMPLETED_HEAD + b'%b,"result":%b'


def _completed_line(event: ActivityCompleted) -> bytes | None:
    if (
        type(event.id) is int
        and type(event.seq) is int
        and type(event.attempt) is int
        and type(event.duration) is float
        and type(event.result) is Encoded
    ):
        body = _COMPLETED_BODY % (
            event.id,
            event.ts.encode(),
            event.seq,
            event.attempt,
            orjson.dumps(event.duration),
            event.result,
        )
        if body.isascii():
            return _signed(body)
    return None


def with_checksum(body: bytes) -> bytes:
    """A JSON object's line with its checksum field added (format 2).

    C1 and bidirectional control characters, which JSON allows raw, are written as ``\\u``
    escapes first: the same values, and a line any terminal shows as text.
    """
    if not body.isascii():
        body = _RAW_CONTROLS.sub(_json_escape, body.decode()).encode()
    return body[:-1] + CRC_TAIL % zlib.crc32(body)


#: What JSON may hold raw but a terminal acts on: C1 controls and bidirectional overrides.
_RAW_CONTROLS: Final = re.compile("[\x80-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


_CRC_FIELD: Final = b',"crc":"'
_CRC_LENGTH: Final = len(b',"crc":"00000000"}')
_HEX: Final = frozenset(b"0123456789abcdef")


def verify_checksum(line: bytes, *, checksummed: bool) -> None:
    """Check a line's checksum field (the caller drops it from the parsed object).

    Raises `EventFormatError` when a checksummed line's checksum is missing or wrong, or when a
    line of an older format carries one.
    """
    tail = line[-_CRC_LENGTH:]
    has_crc = has_checksum(line)
    if not checksummed:
        if has_crc:
            raise EventFormatError("a checksum in a history of format 1")
        return
    if not has_crc:
        raise EventFormatError("the line has no checksum (every line of this format has one)")
    with memoryview(line) as view:  # the CRC of the line as written before the field was added
        crc = zlib.crc32(b"}", zlib.crc32(view[:-_CRC_LENGTH]))
    if crc != int(tail[8:16], 16):
        raise EventFormatError("the checksum does not match: the line was changed after writing")


def has_checksum(line: bytes) -> bool:
    """Whether a line ends with a checksum field (how the first line tells its format)."""
    tail = line[-_CRC_LENGTH:]
    return (
        len(line) > _CRC_LENGTH
        and tail.startswith(_CRC_FIELD)
        and tail.endswith(b'"}')
        and _HEX.issuperset(tail[8:16])
    )


def format_ts(moment: datetime) -> str:
    """``2026-11-24T10:15:00.123456Z``: UTC, microseconds, so that replay gets the same instant."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # Every event is stamped: the text up to the second is made once per second (isoformat
    # with its offset and the slicing cost four times what the rest does).
    key = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year)
    cached = _second
    if cached[0] != key:
        # One tuple, replaced whole: a writer in a sync thread never reads a half-made one.
        cached = _second_of(moment, key)
    return f"{cached[1]}{moment.microsecond:06d}Z"


def _second_of(moment: datetime, key: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
    global _second
    _second = (key, moment.isoformat(timespec="seconds")[:-6] + ".")
    return _second


#: The last second `format_ts` wrote, and its text up to the fraction.
_second: tuple[tuple[int, ...], str] = ((), "")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(slots=True, kw_only=True)
class Event:
    id: int
    ts: str
    type: str

    role: ClassVar[str] = BOOKKEEPING

    @property
    def time(self) -> datetime:
        return parse_ts(self.ts)

    def resolves(self) -> bool:
        """True when this event delivers an outcome to the workflow code."""
        return self.role == RESOLUTION


@dataclass(slots=True, kw_only=True)
class StepEvent(Event):
    """An event about one step of the workflow: ``seq`` is the number of the command behind it."""

    seq: int


# -- the run ---------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class WorkflowStarted(Event):
    """The first event: everything `resume` needs to rebuild the run."""

    type: str = "WorkflowStarted"
    format: int
    run_id: str
    workflow: str
    target: str
    input: Any
    wfrun_version: str
    seed: int
    cwd: str
    max_payload: int
    #: The whole run's limit in seconds (``execution_timeout``), if any.
    execution_timeout: float | None = None
    #: The run that started this one as its child, if any (it carries this run on).
    parent: str | None = None
    #: The run that continued as this one (``continue_as_new``), if any.
    continued_from: str | None = None
    #: How many events make `should_continue_as_new` true: fixed at the start, so that a
    #: replay answers as the live run did.
    continue_as_new_at: int | None = None


@dataclass(slots=True, kw_only=True)
class RunResumed(Event):
    """A process took the run over again; ``repaired`` tells what a torn tail held, if any."""

    type: str = "RunResumed"
    wfrun_version: str
    repaired: str | None = None


@dataclass(slots=True, kw_only=True)
class RunWaiting(Event):
    """The run stopped on purpose until something happens, and released everything.

    ``until`` is when its next timer (or its deadline) falls due; null when only a message can
    move it. ``resume`` carries it on at any time; ``resume --all`` once it is due.
    """

    type: str = "RunWaiting"
    reason: str
    until: str | None = None
    #: How much of the run's inbox it had read (bytes): more there is a message to go on with.
    inbox: int = 0


@dataclass(slots=True, kw_only=True)
class RunBlocked(Event):
    """The workflow code raised a bug (not an application failure): the run stops, resumable.

    ``code`` fingerprints the workflow's module as it was: ``resume --all`` tries the run
    again once it changed. Fix the code, then ``wfrun resume`` replays and carries on.
    """

    type: str = "RunBlocked"
    error: dict[str, Any]
    code: str | None = None
    #: The child run whose block blocks this one (it could only wait for it), if any:
    #: ``resume --all`` tries this run again once that child is no longer BLOCKED.
    child: str | None = None


@dataclass(slots=True, kw_only=True)
class SignalReceived(Event):
    """A signal reached the workflow here: its handler ran at this point, and runs here on replay.

    ``message`` is the id the message had in the run's inbox: each is delivered once.
    """

    type: str = "SignalReceived"
    message: str
    name: str
    input: dict[str, Any]
    role: ClassVar[str] = RESOLUTION


@dataclass(slots=True, kw_only=True)
class UpdateAccepted(Event):
    """An update passed its validator and reached the workflow here; its handler ran from here."""

    type: str = "UpdateAccepted"
    message: str
    name: str
    input: dict[str, Any]
    role: ClassVar[str] = RESOLUTION


@dataclass(slots=True, kw_only=True)
class UpdateCompleted(Event):
    """What the update's handler returned (``result``), or why it failed or was refused."""

    type: str = "UpdateCompleted"
    message: str
    result: Any = None
    error: dict[str, Any] | None = None
    #: True when the validator refused it: the handler never ran.
    rejected: bool = False


@dataclass(slots=True, kw_only=True)
class WorkflowCompleted(Event):
    type: str = "WorkflowCompleted"
    result: Any
    role: ClassVar[str] = TERMINAL


@dataclass(slots=True, kw_only=True)
class WorkflowFailed(Event):
    type: str = "WorkflowFailed"
    error: dict[str, Any]
    role: ClassVar[str] = TERMINAL


@dataclass(slots=True, kw_only=True)
class WorkflowTimedOut(Event):
    """The run went past its ``execution_timeout``; what was in flight was cancelled."""

    type: str = "WorkflowTimedOut"
    timeout: float
    role: ClassVar[str] = TERMINAL


@dataclass(slots=True, kw_only=True)
class WorkflowContinuedAsNew(Event):
    """The run ended by handing over to a fresh run of the same workflow (``run_id``), started
    with ``input``: long-lived loops keep their histories small so."""

    type: str = "WorkflowContinuedAsNew"
    run_id: str
    input: Any
    role: ClassVar[str] = TERMINAL


@dataclass(slots=True, kw_only=True)
class CancelRequested(Event):
    """``wfrun cancel`` reached the workflow here: it saw `asyncio.CancelledError` at this point.

    ``message`` is the request's id in the run's inbox: it is delivered once.
    """

    type: str = "CancelRequested"
    message: str
    reason: str | None = None
    role: ClassVar[str] = RESOLUTION


@dataclass(slots=True, kw_only=True)
class WorkflowCanceled(Event):
    """The workflow ended by letting the cancellation through (after any cleanup it did)."""

    type: str = "WorkflowCanceled"
    reason: str | None = None
    role: ClassVar[str] = TERMINAL


# -- activities ------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class ActivityScheduled(StepEvent):
    """The workflow called an activity; ``input`` maps parameter names to encoded values."""

    type: str = "ActivityScheduled"
    name: str
    input: dict[str, Any]
    role: ClassVar[str] = COMMAND


@dataclass(slots=True, kw_only=True)
class ActivityStarted(StepEvent):
    type: str = "ActivityStarted"
    attempt: int


@dataclass(slots=True, kw_only=True)
class ActivityHeartbeat(StepEvent):
    """The latest progress details of an attempt (throttled; the next attempt reads them)."""

    type: str = "ActivityHeartbeat"
    attempt: int
    details: list[Any]


@dataclass(slots=True, kw_only=True)
class ActivityCompleted(StepEvent):
    type: str = "ActivityCompleted"
    attempt: int
    duration: float
    result: Any
    role: ClassVar[str] = RESOLUTION


@dataclass(slots=True, kw_only=True)
class ActivityFailed(StepEvent):
    """An attempt raised. ``retry_in`` is the delay before the next attempt, null when final."""

    type: str = "ActivityFailed"
    attempt: int
    duration: float
    error: dict[str, Any]
    retry_in: float | None

    def resolves(self) -> bool:
        return self.retry_in is None


@dataclass(slots=True, kw_only=True)
class ActivityTimedOut(StepEvent):
    """An attempt ran past a timeout (``timeout`` names which) and was cancelled."""

    type: str = "ActivityTimedOut"
    attempt: int
    duration: float
    timeout: str
    limit: float
    retry_in: float | None
    #: What happened, as the workflow's error says it (e.g. that a thread was abandoned).
    message: str | None = None

    def resolves(self) -> bool:
        return self.retry_in is None


@dataclass(slots=True, kw_only=True)
class ActivityCanceled(StepEvent):
    """The workflow stopped waiting for the activity (a lost race); its attempt was cancelled."""

    type: str = "ActivityCanceled"


# -- child workflows -------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class ChildWorkflowStarted(StepEvent):
    """The workflow started a child run (``run_id``, its own history file) and awaits it."""

    type: str = "ChildWorkflowStarted"
    workflow: str
    run_id: str
    target: str
    input: Any
    role: ClassVar[str] = COMMAND


@dataclass(slots=True, kw_only=True)
class ChildWorkflowCompleted(StepEvent):
    """The child run completed; ``run_id`` is its last run (it may have continued as new)."""

    type: str = "ChildWorkflowCompleted"
    run_id: str
    result: Any
    role: ClassVar[str] = RESOLUTION


@dataclass(slots=True, kw_only=True)
class ChildWorkflowFailed(StepEvent):
    """The child run ended otherwise: ``status`` FAILED, TIMED_OUT or CANCELED."""

    type: str = "ChildWorkflowFailed"
    run_id: str
    status: str
    error: dict[str, Any]
    role: ClassVar[str] = RESOLUTION


@dataclass(slots=True, kw_only=True)
class ChildWorkflowCancelRequested(StepEvent):
    """The workflow stopped waiting for its child (or ended first): the child was asked to
    cancel, through its inbox, and ends on its own."""

    type: str = "ChildWorkflowCancelRequested"
    run_id: str


# -- timers and markers ----------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class TimerStarted(StepEvent):
    type: str = "TimerStarted"
    duration: float
    due: str
    role: ClassVar[str] = COMMAND


@dataclass(slots=True, kw_only=True)
class TimerFired(StepEvent):
    type: str = "TimerFired"
    role: ClassVar[str] = RESOLUTION


@dataclass(slots=True, kw_only=True)
class TimerCanceled(StepEvent):
    type: str = "TimerCanceled"


@dataclass(slots=True, kw_only=True)
class MarkerRecorded(StepEvent):
    """A decision recorded once and replayed as is; ``name`` is the marker kind (``patch``)."""

    type: str = "MarkerRecorded"
    name: str
    value: Any
    role: ClassVar[str] = COMMAND


@dataclass(slots=True, kw_only=True)
class ForeignEvent(Event):
    """An event of another backend's history that has no counterpart here (a Temporal
    workflow task, say), under that backend's own ``type`` name: shown, never skipped.

    Never written to a history file, and so not among `EVENT_TYPES`: a file holding one is
    damaged, as a file holding any unknown type is.
    """

    #: What the event says, as one line of text.
    detail: str = ""


EVENT_TYPES: Final[dict[str, type[Event]]] = {
    cls.__dataclass_fields__["type"].default: cls  # type: ignore[misc]
    for cls in (
        WorkflowStarted,
        RunResumed,
        RunWaiting,
        RunBlocked,
        SignalReceived,
        UpdateAccepted,
        UpdateCompleted,
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowTimedOut,
        WorkflowContinuedAsNew,
        CancelRequested,
        WorkflowCanceled,
        ActivityScheduled,
        ActivityStarted,
        ActivityHeartbeat,
        ActivityCompleted,
        ActivityFailed,
        ActivityTimedOut,
        ActivityCanceled,
        TimerStarted,
        TimerFired,
        TimerCanceled,
        MarkerRecorded,
        ChildWorkflowStarted,
        ChildWorkflowCompleted,
        ChildWorkflowFailed,
        ChildWorkflowCancelRequested,
    )
}

#: The events `new_line` writes from a template, and how.
_TEMPLATES: Final[dict[type[Event], Callable[[Any], bytes | None]]] = {
    ActivityScheduled: _scheduled_line,
    ActivityStarted: _started_line,
    ActivityCompleted: _completed_line,
}

#: Called with each event as it is recorded (the live view on a terminal follows a run so).
Observer = Callable[[Event], None]


class EventFormatError(ValueError):
    """A JSON object that is not a valid event; the history store adds the file and line."""


def _field_checks(cls: type[Event]) -> _Checks:
    """Computed once per event type, on first use (keeps ``import wfrun`` quick)."""
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = _CHECKS[cls] = _compute_checks(cls)
    return checks


#: One field's check: its name, the exact JSON types it takes (None: any), and a check of
#: its value with what it should be (None: none).
_FieldCheck = tuple[str, frozenset[type] | None, Callable[[Any], bool] | None, str]
#: Per event type: the required field names, all field names, and the checks.
_Checks = tuple[frozenset[str], frozenset[str], tuple[_FieldCheck, ...]]
_CHECKS: dict[type[Event], _Checks] = {}


def _compute_checks(cls: type[Event]) -> _Checks:
    """Read from the annotations: required fields, accepted types; `_VALUES` by field name."""
    hints = typing.get_type_hints(cls)
    required: set[str] = set()
    checks: list[_FieldCheck] = []
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.add(f.name)
        accepted = _scalar_types(hints[f.name])
        valid, wanted = _VALUES.get(f.name, (None, ""))
        if accepted or valid:
            checks.append((f.name, frozenset(accepted) or None, valid, wanted))
    return frozenset(required), frozenset(cls.__dataclass_fields__), tuple(checks)


def _scalar_types(hint: Any) -> tuple[type, ...]:
    options = typing.get_args(hint) if typing.get_origin(hint) is not None else (hint,)
    if typing.get_origin(hint) not in (None, typing.Union, type(int | None)):
        options = (typing.get_origin(hint),)
    accepted: list[type] = []
    for option in options:
        if option is Any:
            return ()
        if option is float:
            accepted += [float, int]
        elif option is type(None):
            accepted.append(type(None))
        elif isinstance(option, type):
            accepted.append(option)
        else:
            return ()
    return tuple(accepted)


def event_from_json(obj: Any) -> Event:
    """Build an event from one parsed history line; raises `EventFormatError` saying what is off."""
    if type(obj) is dict:
        kind = obj.get("type")
        known = _KINDS.get(kind) if type(kind) is str else None
        if known is not None:
            known_cls, name = known
            fast = _FAST.get(known_cls) or _compile_fast_check(known_cls)
            if fast(obj):
                obj["type"] = name  # the one shared string, not a copy per event held
                return known_cls(**obj)
    # Something is off (or a check would fail): the checks one by one, to say what.
    return checked_event(obj)


def checked_event(obj: Any) -> Event:
    """`event_from_json` the long way: each check of `_field_checks` in turn, from its table
    (the generated checks, `_FAST` and `line_builder`, must agree with it)."""
    if type(obj) is not dict:
        raise EventFormatError(f"expected a JSON object, found {type(obj).__name__}")
    kind = obj.get("type")
    cls = EVENT_TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise EventFormatError(
            f"unknown event type {kind!r} (written by a newer wfrun? this one reads "
            f"{', '.join(EVENT_TYPES)})"
        )
    required, fields, checks = _field_checks(cls)
    keys = obj.keys()
    if not required <= keys:
        raise EventFormatError(f"{kind} lacks {', '.join(sorted(required - keys))}")
    if not keys <= fields:
        raise EventFormatError(f"{kind} has unknown fields {', '.join(sorted(keys - fields))}")
    for name, accepted, valid, wanted in checks:
        if name not in obj:
            continue
        value = obj[name]
        # Exact types: JSON gives exact ones, and true/false must not pass for an int.
        if accepted is not None and type(value) not in accepted:
            raise EventFormatError(
                f"{kind}.{name} should be {_describe(accepted)}, found {value!r}"
            )
        if valid is not None and value is not None and not valid(value):
            raise EventFormatError(f"{kind}.{name} should be {wanted}, found {value!r}")
    return cls(**obj)


#: Each type name as the one string its class holds, with the class.
_KINDS: Final[dict[str, tuple[type[Event], str]]] = {
    name: (cls, name) for name, cls in EVENT_TYPES.items()
}
#: Per event type: one generated function passing exactly the objects the checks in
#: `event_from_json` pass. Reading a history calls it for every line, and the generic loop over
#: the checks cost about a third of a replay.
_FAST: dict[type[Event], Callable[[dict[str, Any]], bool]] = {}


def _compile_fast_check(cls: type[Event]) -> Callable[[dict[str, Any]], bool]:
    """The checks of `_field_checks` unrolled into straight code (see `_FAST`)."""
    required, fields, checks = _field_checks(cls)
    # Every field in the order the writer writes them: the keys need no set arithmetic.
    written = tuple(f.name for f in dataclasses.fields(cls))
    namespace: dict[str, Any] = {"REQUIRED": required, "FIELDS": fields, "WRITTEN": written}
    lines = [
        "def check(obj):",
        "    if tuple(obj) != WRITTEN:",
        "        keys = obj.keys()",
        "        if not (REQUIRED <= keys and keys <= FIELDS):",
        "            return False",
    ]
    for i, (name, accepted, valid, _) in enumerate(checks):
        indent = "    "
        if name not in required:
            lines.append(f"    if {name!r} in obj:")
            indent = "        "
        lines.append(f"{indent}v = obj[{name!r}]")
        lines += _value_checks(i, accepted, valid, "v", indent, namespace)
    lines.append("    return True")
    exec("\n".join(lines), namespace)
    check: Callable[[dict[str, Any]], bool] = namespace["check"]
    _FAST[cls] = check
    return check


def _value_checks(
    i: int,
    accepted: frozenset[type] | None,
    valid: Callable[[Any], bool] | None,
    v: str,
    indent: str,
    namespace: dict[str, Any],
) -> list[str]:
    """Generated lines returning False (from the generated function) when ``v`` fails the
    check of field ``i``: exactly what `event_from_json`'s loop over the checks refuses."""
    lines = []
    numbers = frozenset((int, float, type(None)))
    if accepted is not None:
        namespace[f"A{i}"] = accepted
        if len(accepted) == 1:  # one exact type: an identity test, no set lookup
            (only,) = accepted
            namespace[f"T{i}"] = only
            lines.append(f"{indent}if type({v}) is not T{i}:")
        else:
            lines.append(f"{indent}if type({v}) not in A{i}:")
        lines.append(f"{indent}    return False")
    if valid is None:
        return lines
    low = getattr(valid, "low", None)
    guard = f"{v} is not None and " if accepted is None or type(None) in accepted else ""
    if low is not None and accepted is not None and accepted <= numbers:
        # `_at_least` inlined: with exact int/float types, NaN and infinities fail the
        # comparisons as they fail isfinite.
        lines.append(f"{indent}if {guard}not ({low!r} <= {v} <= {_LONGEST!r}):")
        lines.append(f"{indent}    return False")
    elif valid is _is_timestamp and accepted is not None and accepted <= {str, type(None)}:
        # `_is_timestamp` inlined (a call per event is a good part of its cost); the value is
        # known to be text (or None) here, so fromisoformat raises ValueError only.
        namespace["FROMISOFORMAT"] = datetime.fromisoformat
        inner = indent
        if guard:
            lines.append(f"{indent}if {v} is not None:")
            inner = indent + "    "
        lines += [
            f"{inner}try:",
            f"{inner}    m = FROMISOFORMAT({v})",
            f"{inner}except ValueError:",
            f"{inner}    return False",
            f'{inner}if m.tzinfo is None or "T" not in {v} or not '
            f"({_EARLIEST_YEAR} <= m.year <= {_LATEST_YEAR}):",
            f"{inner}    return False",
        ]
    else:
        namespace[f"V{i}"] = valid
        lines.append(f"{indent}if {guard}not V{i}({v}):")
        lines.append(f"{indent}    return False")
    return lines


#: A line's parsed object, its checksum field last, to its event: None when anything is off
#: (`event_from_json` then says what). Generated per event type on first use.
LineBuilder = Callable[[dict[str, Any]], "Event | None"]
#: Whether a line's parsed object (its checksum field last) is a valid event of its type,
#: without building it (``history --json`` copies the line, and needs no event).
LineCheck = Callable[[dict[str, Any]], bool]
_BUILDERS: dict[str, LineBuilder | None] = {}
_LINE_CHECKS: dict[str, LineCheck | None] = {}


def line_builder(kind: str) -> LineBuilder | None:
    """The fast way from a checksummed line's object of type ``kind`` to its event (see
    `LineBuilder`), or None for a type it has none for (`WorkflowStarted`, the events that
    end a run, unknown types).

    It accepts only objects with every field of the type and ``crc``, none else (in any
    order), which `event_from_json` would accept (the same checks, unrolled, on the values
    in place); it builds the event without the keyword call of its ``__init__``. Anything
    else is None, and the caller goes the long way.
    """
    return _compiled(kind, _BUILDERS, build=True)  # type: ignore[no-any-return]


def line_check(kind: str) -> LineCheck | None:
    """As `line_builder`, but only whether the object is a valid event (nothing built)."""
    return _compiled(kind, _LINE_CHECKS, build=False)  # type: ignore[no-any-return]


def _compiled(kind: str, made: dict[str, Any], *, build: bool) -> Any:
    """``made[kind]``, compiled the first time it is asked for (None: no fast way)."""
    try:
        return made[kind]
    except KeyError:
        pass
    cls = EVENT_TYPES.get(kind)
    # No builder for the events that end a run (one a history at most): a reader goes the
    # long way for them, so that only that way has to ask whether the run ended before.
    if cls is None or cls is WorkflowStarted or (build and cls.role == TERMINAL):
        found = None
    else:
        found = _compile_line(cls, build=build)
    made[kind] = found
    return found


def _compile_line(cls: type[Event], *, build: bool) -> Any:
    _, _, checks = _field_checks(cls)
    by_name = {name: (i, accepted, valid) for i, (name, accepted, valid, _) in enumerate(checks)}
    written = tuple(f.name for f in dataclasses.fields(cls))
    names = [f"v{n}" for n in range(len(written))]
    namespace: dict[str, Any] = {
        "LENGTH": len(written) + 1,
        "VALUES": operator.itemgetter(*written, "crc"),
        "NEW": object.__new__,
        "CLS": cls,
        "NAME": cls.__dataclass_fields__["type"].default,
    }
    refuse = "        return " + ("None" if build else "False")
    # Every field and the checksum, none else: as many keys, each of them there. The values
    # taken by one itemgetter call, in whatever order the line has them.
    lines = [
        "def line(obj):",
        "    if len(obj) != LENGTH:",
        refuse,
        "    try:",
        f"        {', '.join(names)}, _ = VALUES(obj)",
        "    except KeyError:",
        refuse,
    ]
    for n, name in enumerate(written):
        if name == "type" or name not in by_name:
            continue  # the type chose this function; a value of any JSON type is fine
        i, accepted, valid = by_name[name]
        lines += _value_checks(i, accepted, valid, names[n], "    ", namespace)
    if build:
        lines.append("    event = NEW(CLS)")
        for n, name in enumerate(written):
            # The type's one shared string, not the parsed copy held per event.
            lines.append(f"    event.{name} = " + ("NAME" if name == "type" else names[n]))
        lines.append("    return event")
    else:
        lines.append("    return True")
    source = "\n".join(lines)
    if build:  # the checks return False where they refuse; a builder returns None
        source = source.replace("return False", "return None")
    exec(source, namespace)
    return namespace["line"]


def _is_timestamp(value: Any) -> bool:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):  # not text; the 31st of February, hour 25
        return False
    if moment.tzinfo is None or "T" not in value:
        return False
    # Far enough from the calendar's ends that adding any valid duration stays on it.
    return _EARLIEST_YEAR <= moment.year <= _LATEST_YEAR


def is_run_id(value: Any) -> bool:
    """Whether ``value`` may name a run: ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`` without ``..``.

    A run id names a file, so one read from a history must be as safe as one typed by hand:
    no path traversal, no hidden file, nothing that looks like an option.
    """
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None and ".." not in value


_RUN_ID: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def _at_least(low: float) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return math.isfinite(value) and low <= value <= _LONGEST

    check.low = low  # type: ignore[attr-defined]  # read by `_compile_fast_check`
    return check


#: No number of seconds (about 317 years) or bytes in a history is larger: timer and retry
#: arithmetic stays safe. Writers refuse larger values where they are given (`LIMIT`).
_LONGEST: Final = LIMIT
_EARLIEST_YEAR: Final = 1970
_LATEST_YEAR: Final = 9000


#: Checks on values, by field name, beyond their JSON types (which the annotations give).
_VALUES: Final[dict[str, tuple[Callable[[Any], bool], str]]] = {
    "ts": (_is_timestamp, "an ISO 8601 time with its offset, years 1970 to 9000"),
    "due": (_is_timestamp, "an ISO 8601 time with its offset, years 1970 to 9000"),
    "until": (_is_timestamp, "an ISO 8601 time with its offset, years 1970 to 9000"),
    "id": (_at_least(1), "1 or more"),
    "run_id": (is_run_id, "a run id ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})"),
    "parent": (is_run_id, "a run id ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})"),
    "continued_from": (is_run_id, "a run id ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})"),
    "child": (is_run_id, "a run id ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})"),
    "continue_as_new_at": (_at_least(1), "1 or more"),
    "seq": (_at_least(1), "1 or more"),
    "attempt": (_at_least(1), "1 or more"),
    "format": (_at_least(1), "1 or more"),
    "max_payload": (_at_least(1), "1 or more"),
    "duration": (_at_least(0), "a number of seconds, 0 to 1e10"),
    "retry_in": (_at_least(0), "a number of seconds, 0 to 1e10"),
    "limit": (_at_least(0), "a number of seconds, 0 to 1e10"),
    "execution_timeout": (_at_least(0), "a number of seconds, 0 to 1e10"),
}


def _describe(accepted: frozenset[type]) -> str:
    names = sorted(t.__name__ if t is not type(None) else "null" for t in accepted)
    return " or ".join(names)
