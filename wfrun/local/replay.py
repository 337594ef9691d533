"""Replay: today's workflow code against a recorded history, with nothing run and nothing written.

The workflow is started from the top, and the history's outcomes are delivered to it one at a
time, in history order. Every command the code issues is checked against the command the
history recorded under the same number:

- an activity must have the same name and the same encoded input;
- a timer must be a timer, a patch marker the same marker;
- an outcome must arrive for a command the code has issued;
- and the code must end where the history ends (or go on past an unfinished one).

Any difference is a `NonDeterminismError` naming the run, the event, what the history holds
and what the code asked for. What the code asks for beyond the end of an unfinished history is
not an error: it is the work a resume goes on to do (`Replay.backlog`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Final

from ..errors import ContinueAsNewError, NonDeterminismError, failure_type
from ..events import (
    COMMAND,
    EVENT_TYPES,
    RESOLUTION,
    TERMINAL,
    ActivityCanceled,
    ActivityCompleted,
    ActivityFailed,
    ActivityHeartbeat,
    ActivityScheduled,
    ActivityStarted,
    ActivityTimedOut,
    ChildWorkflowCancelRequested,
    ChildWorkflowStarted,
    Event,
    MarkerRecorded,
    StepEvent,
    TimerCanceled,
    TimerStarted,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowTimedOut,
)
from ..payload import abbreviate, describe_call, encode, loads, raw
from .commands import (
    CancelActivity,
    CancelChild,
    CancelTimer,
    Command,
    RecordMarker,
    ScheduleActivity,
    StartChild,
    StartTimer,
)
from .guard import seen
from .instance import WorkflowInstance


@dataclass(slots=True)
class InFlight:
    """Where an activity stood when its run stopped: what a resume needs to carry it on."""

    attempt: int = 1
    #: When the next attempt is due (after a recorded retry delay); None: at once.
    due: datetime | None = None
    #: The last recorded heartbeat details, encoded (empty: none).
    heartbeat_details: bytes = b""
    #: When the call was scheduled: its schedule_to_close_timeout counts from there.
    scheduled: datetime | None = None


@dataclass(slots=True)
class Replay:
    """What a replay found."""

    #: Commands the code issued past the end of the history: the work a resume goes on to do.
    backlog: list[Command] = field(default_factory=list)
    #: Recorded commands the code cancelled (a resume must not restart them).
    cancelled: set[int] = field(default_factory=set)


class RecordedRun:
    """A history, indexed for replay."""

    def __init__(self, run_id: str, events: list[Event]) -> None:
        self.run_id = run_id
        self.events = events
        #: The workflow being replayed (set by `replay`), for the guard's verdict on a mismatch.
        self._workflow = ""
        self.commands: dict[int, StepEvent] = {}
        #: What reaches the workflow, in history order: outcomes of its steps, and messages.
        self.resolutions: list[Event] = []
        self.terminal: Event | None = None
        #: `resolved`, once asked (only a resume asks, once).
        self._resolved: set[int] | None = None
        self._bookkeeping: dict[int, list[StepEvent]] = {}
        #: The last event that shows the workflow's progress (a command or an outcome).
        self.last_progress = 0
        #: The index in `resolutions` of the next event to deliver, during `replay`.
        self._next = 0
        # By class: one role lookup per event, `resolves()` called only where a class
        # decides it per event (a retry or a final failure); every event of a long history
        # passes here.
        commands, resolutions = self.commands, self.resolutions
        bookkeeping = self._bookkeeping
        event: Any  # an Event; a StepEvent wherever its class is in _STEPS (no cast per event)
        # The start of an attempt, held back until the next event: a step's completion most
        # often follows its start, and drops it (bookkeeping of a resolved step is needed
        # no more); anything else files it first, in order.
        held: Any = None
        for event in islice(events, 1, None):
            cls = event.__class__
            # The three events of every step first, by class (one test each); a schedule
            # first, as it leaves a start held back where it is.
            if cls is ActivityScheduled:
                commands[event.seq] = event
                continue
            if cls is ActivityStarted:
                if held is not None:
                    bookkeeping.setdefault(held.seq, []).append(held)
                held = event
                continue
            if held is not None:
                if cls is not ActivityCompleted or held.seq != event.seq:
                    bookkeeping.setdefault(held.seq, []).append(held)
                held = None
            if cls is ActivityCompleted:
                resolutions.append(event)
                if bookkeeping:  # most often empty: the step's start was dropped above
                    bookkeeping.pop(event.seq, None)
                continue
            role = cls.role
            if role == COMMAND:
                commands[event.seq] = event
            elif role == RESOLUTION or (cls in _DECIDES and event.resolves()):
                resolutions.append(event)
                if cls in _STEPS:  # else a message: it moved the workflow on
                    # Attempts and retries of a resolved step are needed no more (only what
                    # is still in flight is carried on): not held for the whole resume.
                    bookkeeping.pop(event.seq, None)
            elif role == TERMINAL:
                self.terminal = event
            elif cls in _STEPS:
                bookkeeping.setdefault(event.seq, []).append(event)
        if held is not None:
            bookkeeping.setdefault(held.seq, []).append(held)
        # Found from the end, not noted at every event: the last is most often one of the
        # last two (a completion before the run's end).
        for event in islice(reversed(events), len(events) - 1):
            cls = event.__class__
            if cls.role in (COMMAND, RESOLUTION) or (cls in _DECIDES and event.resolves()):
                self.last_progress = event.id
                break

    @property
    def resolved(self) -> set[int]:
        """Commands whose outcome reached the workflow (by seq)."""
        found = self._resolved
        if found is None:
            # Made when asked, not at every outcome while indexing: only a resume asks.
            found = self._resolved = {
                event.seq for event in self.resolutions if event.__class__ in _STEPS
            }
        return found

    def command(self, seq: int) -> Event | None:
        return self.commands.get(seq)

    # -- replay ------------------------------------------------------------------------------

    def replay(self, instance: WorkflowInstance, args: list[Any], kwargs: dict[str, Any]) -> Replay:
        """Run ``instance`` through the whole history; raise on the first disagreement."""
        found = Replay()
        self._workflow = instance.definition.name
        self._next = 0
        resolutions = self.resolutions
        try:
            # Replaying (quiet logger, no guard on resumes) means: this code ran live before.
            # The first activation did if anything was recorded after WorkflowStarted; each
            # outcome's did, since the engine delivers an outcome right after recording it.
            instance.replaying = self.last_progress > 1
            # The instance may deliver an awaited activity's outcome itself (`outcome_at_once`),
            # moving `_next` on: the loop below delivers whatever it did not.
            instance.replayer = self
            instance.start(args, kwargs)
            instance.replaying = True
            self._check(instance.take_commands(), found)
            while self._next < len(resolutions):
                event = resolutions[self._next]
                self._next += 1
                # Outcomes may still arrive after the workflow returned (those recorded in the
                # same commit): only an outcome of a step the code never asked for is wrong.
                if isinstance(event, StepEvent) and event.seq > instance.last_seq:
                    self._check_unasked(instance)
                instance.apply(event)
                self._check(instance.take_commands(), found)
            self._check_end(instance)
        finally:
            instance.replayer = None
            instance.replaying = False
        return found

    def outcome_at_once(self, seq: int, commands: list[Command]) -> ActivityCompleted | None:
        """The next event, if the instance may deliver it now (see `Replayer`)."""
        if self._next >= len(self.resolutions):
            return None  # the live boundary: what comes next is not recorded
        event = self.resolutions[self._next]
        if type(event) is not ActivityCompleted or event.seq != seq:
            return None
        for command in commands:
            recorded = self.commands.get(command.seq)
            # A cancel, a command past the history or one that disagrees: the ordinary path.
            if recorded is None or not _same(command, recorded):
                return None
        return event

    def completion_at_once(self, seq: int, name: str, value: Any) -> ActivityCompleted | None:
        """The next event, if the instance may deliver it now (see `Replayer`)."""
        at = self._next
        try:
            event = self.resolutions[at]
        except IndexError:
            return None  # the live boundary: what comes next is not recorded
        if event.__class__ is not ActivityCompleted or event.seq != seq:
            return None
        recorded = self.commands.get(seq)
        # `_same`'s test of a ScheduleActivity, on the input already decoded.
        if (
            recorded is None
            or recorded.__class__ is not ActivityScheduled
            or recorded.name != name
            or recorded.input != value
        ):
            return None
        self._next = at + 1
        return event

    def put_back(self) -> None:
        self._next -= 1

    def take_outcome(self) -> None:
        self._next += 1

    def _check(self, commands: list[Command], found: Replay) -> None:
        for command in commands:
            if isinstance(command, CancelActivity | CancelTimer | CancelChild):
                if command.seq in self.commands:
                    found.cancelled.add(command.seq)
                else:
                    found.backlog.append(command)
                continue
            recorded = self.commands.get(command.seq)
            if recorded is None:
                found.backlog.append(command)
            elif not _same(command, recorded):
                raise self._mismatch(recorded, self._describe(recorded), command.describe())

    def _check_unasked(self, instance: WorkflowInstance) -> None:
        """Raise for the first recorded step the code has not asked for, if any."""
        asked = instance.last_seq  # a property: read once, not once per recorded command
        commands = self.commands
        # Once at the end of every replay, over every recorded command: the test in C first.
        if not commands or max(commands) <= asked:
            return
        unasked = [seq for seq in commands if seq > asked]
        if unasked:
            recorded = self.commands[min(unasked)]
            doing = "returned" if instance.done else "is waiting on earlier steps"
            raise self._mismatch(
                recorded, self._describe(recorded), f"nothing: the workflow code {doing}"
            )

    def _check_end(self, instance: WorkflowInstance) -> None:
        self._check_unasked(instance)
        terminal = self.terminal
        if terminal is None or isinstance(terminal, WorkflowTimedOut):
            return  # an unfinished run, or one cut off by its deadline wherever the code was
        if not instance.done:
            raise self._mismatch(
                terminal,
                f"the end of the workflow ({terminal.type})",
                "more: the workflow code has not returned",
            )
        value, exc = instance.outcome()
        if isinstance(terminal, WorkflowCompleted):
            if exc is not None:
                raise self._mismatch(
                    terminal,
                    f"a completed workflow returning {abbreviate(terminal.result)}",
                    f"a failure: {failure_type(exc)}: {exc}",
                )
            try:
                same = loads(encode(value, subject="the workflow's result")) == terminal.result
            except Exception:
                same = False
            if not same:
                raise self._mismatch(
                    terminal,
                    f"a workflow returning {abbreviate(terminal.result)}",
                    f"a workflow returning {abbreviate(value)}",
                )
        elif isinstance(terminal, WorkflowContinuedAsNew):
            wanted = f"a workflow continuing as new with {abbreviate(terminal.input)}"
            if not isinstance(exc, ContinueAsNewError):
                did = f"a failure: {failure_type(exc)}" if exc else f"a result {abbreviate(value)}"
                raise self._mismatch(terminal, wanted, did)
            if loads(exc.input) != terminal.input:
                raise self._mismatch(
                    terminal, wanted, f"continuing as new with {abbreviate(loads(exc.input))}"
                )
        elif isinstance(terminal, WorkflowFailed):
            recorded_type = terminal.error.get("type")
            if exc is None:
                raise self._mismatch(
                    terminal,
                    f"a workflow failing with {recorded_type}",
                    f"a workflow returning {abbreviate(value)}",
                )
            if failure_type(exc) != recorded_type:
                raise self._mismatch(
                    terminal,
                    f"a workflow failing with {recorded_type}",
                    f"a workflow failing with {failure_type(exc)}: {exc}",
                )

    # -- resuming what was in flight ---------------------------------------------------------

    def in_flight(self, seq: int, clock_now: datetime) -> InFlight:
        """Attempt number, due time and heartbeat details for a recorded, unresolved activity.

        An attempt interrupted by the crash never reached an outcome: it runs again under the
        same attempt number (the crash is not the activity's failure).
        """
        command = self.commands.get(seq)
        state = InFlight(scheduled=command.time if command is not None else None)
        for event in self._bookkeeping.get(seq, []):
            if isinstance(event, ActivityStarted):
                state.attempt, state.due = event.attempt, None
            elif (
                isinstance(event, ActivityFailed | ActivityTimedOut) and event.retry_in is not None
            ):
                state.attempt = event.attempt + 1
                state.due = event.time + timedelta(seconds=event.retry_in)
            elif isinstance(event, ActivityHeartbeat):
                state.heartbeat_details = raw(event.details)
        if state.due is not None and state.due <= clock_now:
            state.due = None
        return state

    def was_cancelled(self, seq: int) -> bool:
        cancelled = ActivityCanceled | TimerCanceled | ChildWorkflowCancelRequested
        return any(isinstance(e, cancelled) for e in self._bookkeeping.get(seq, []))

    # -- messages ----------------------------------------------------------------------------

    def _describe(self, event: Event | None) -> str:
        if isinstance(event, ActivityScheduled):
            return describe_call(event.name, event.input)
        if isinstance(event, TimerStarted):
            return f"a timer of {event.duration:g}s"
        if isinstance(event, MarkerRecorded):
            return f"{event.name} marker {event.value!r}"
        if event is None:
            return "a command that was never recorded"
        return event.type

    def _mismatch(self, event: Event | None, recorded: str, requested: str) -> NonDeterminismError:
        where = f"event {event.id} ({event.type})" if event is not None else "its end"
        return NonDeterminismError(
            f"run {self.run_id} does not replay: at {where} the history holds {recorded}, but "
            f"the code asked for {requested}.\n{_verdict(self._workflow)} The history file was "
            "not changed.",
            run_id=self.run_id,
            event_id=event.id if event is not None else None,
            recorded=recorded,
            requested=requested,
        )


#: The event classes about one step (they carry ``seq``).
_STEPS: Final = frozenset(cls for cls in EVENT_TYPES.values() if issubclass(cls, StepEvent))
#: The event classes whose `Event.resolves` looks at the event, not only at its role.
_DECIDES: Final = frozenset(
    cls for cls in EVENT_TYPES.values() if cls.resolves is not Event.resolves
)


def _verdict(workflow: str) -> str:
    """Why code and history part ways: a call the guard saw whose result changes on replay
    (the code is not deterministic), or else an edit (the code changed)."""
    calls = seen(workflow)
    if calls:
        call, where, replacement = calls[0]
        return (
            f"The workflow code is not deterministic: it called {call} at {where}, whose result "
            f"differs on replay. Use {replacement} instead, then start a new run: this one "
            "recorded a value the code cannot reproduce."
        )
    return (
        "The workflow code changed since this run started. To finish this run, revert the "
        "change (or guard it with workflows.workflow.patched(...)); otherwise start a new run."
    )


def _same(command: Command, recorded: Event) -> bool:
    if isinstance(command, ScheduleActivity):
        return (
            isinstance(recorded, ActivityScheduled)
            and recorded.name == command.definition.name
            and recorded.input == loads(command.input)
        )
    if isinstance(command, StartTimer):
        return isinstance(recorded, TimerStarted)
    if isinstance(command, RecordMarker):
        return (
            isinstance(recorded, MarkerRecorded)
            and recorded.name == command.name
            and recorded.value == command.value
        )
    if isinstance(command, StartChild):
        return (
            isinstance(recorded, ChildWorkflowStarted)
            and recorded.workflow == command.definition.name
            and recorded.run_id == command.run_id
            and recorded.input == loads(command.input)
        )
    return False
