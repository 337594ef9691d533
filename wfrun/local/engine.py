"""The local engine: replays a run's history into its workflow, then carries the run on.

::

    history ─► replay (no I/O; today's code checked against the recorded commands)
            ─► live: commands ─► recorded ─► activities and timers run on the real loop
                     outcomes ─► recorded, fsync ─► delivered to the workflow one at a time

Outcomes reach the workflow only through the history, in history order: an outcome is
appended, its fsync begun (outcomes that arrive together share one), and it is delivered,
one event at a time, each followed by the workflow running as far as it can. A replay
delivers the same events in the same order, so the workflow makes the same decisions.

Nothing the workflow does after it saw an outcome leaves the run before that outcome is
durable: an activity's attempt or its cancellation, a child run started or asked to cancel,
an update's answer, a person asked for an input, the run's end or wait each wait for the
sync first (`HistoryWriter.settle`). The workflow's own code has no effects of its own (it
must be deterministic), so a power cut that takes an outcome it saw takes nothing anybody saw
with it: the activity runs again and the workflow replays. Meanwhile a run alone in its
process takes its next step while the disk flushes: that overlap is most of the gap between a
step and the disk's own limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import sys
import threading
import uuid
import warnings
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import orjson

from .._version import __version__
from ..clock import Clock, sleep_until
from ..definitions import WorkflowDefinition
from ..errors import (
    ActivityError,
    ApplicationError,
    ContinueAsNewError,
    DeterminismWarning,
    Failure,
    HistoryCorruptError,
    HistoryIOError,
    NonDeterminismError,
    PayloadError,
    RunLockedError,
    WfrunError,
    WorkflowFailedError,
    failure_type_names,
)
from ..events import (
    ActivityCanceled,
    ActivityCompleted,
    ActivityFailed,
    ActivityHeartbeat,
    ActivityScheduled,
    ActivityTimedOut,
    CancelRequested,
    ChildWorkflowCancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Encoded,
    Event,
    MarkerRecorded,
    RunBlocked,
    RunResumed,
    RunWaiting,
    SignalReceived,
    StepEvent,
    TimerCanceled,
    TimerFired,
    TimerStarted,
    UpdateAccepted,
    UpdateCompleted,
    WorkflowCanceled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowTimedOut,
    format_ts,
    parse_ts,
)
from ..loader import fingerprint
from ..payload import annotation_name, check_size, dumps, encode, explain, plain, raw, result_advice
from ..policy import ActivityOptions
from ..runs import InputPrompt, RunOutcome, RunStatus, new_run_id
from ..runtime import ActivityInfo
from . import syncs
from .attempts import Heartbeats, Outcome, attempt_until_final
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
from .eager import start_eagerly
from .guard import seen
from .history import History
from .inbox import POLL, Inbox, Message
from .inbox import watch as watch_inbox
from .instance import WorkflowInstance
from .replay import InFlight, RecordedRun, Replay
from .store import HistoryWriter
from .watchdog import watching

if TYPE_CHECKING:
    from pydantic import BaseModel

T = TypeVar("T")


class _Expired:
    """Put on the queue when the run's execution_timeout expires."""


class _Wake:
    """Put on the queue when a child stops without ending: the run looks again whether it
    has anything left to do here."""


#: What the run's executions report to its loop: an event to record, or why it stops.
_Report = tuple[type[Event], dict[str, Any]] | _Expired | _Wake | BaseException


class _Reports:
    """The reports the run's loop (`RunEngine._live`) takes, all there are at once.

    `asyncio.Queue` would do, built for any number of getters and putters and a bound: its
    get and put cost a step several frames. Here one task takes, and what it waits on is a
    bare future (no coroutine of its own), resolved by the first report to come.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[_Report] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: _Report) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # else the taker was cancelled as it waited
                waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def arrival(self) -> asyncio.Future[None]:
        """A future resolved by the next report (the running loop's): await it when empty."""
        waiter = self._waiter = asyncio.Future()
        return waiter

    def take(self) -> list[_Report]:
        """Every report so far, oldest first (the list stays the queue's: a copy is taken)."""
        items = self._items[:]
        self._items.clear()
        return items


class ChildRuns(Protocol):
    """Where a run's children are carried out (the backend that holds the runs)."""

    async def run_child(
        self,
        command: StartChild,
        *,
        parent: str,
        clock: Clock,
        max_wait: float | None,
        ask: InputPrompt | None,
    ) -> RunOutcome:
        """Start the child of ``command``, or carry it on if it exists (only if it is that
        very child), following any continue-as-new chain, until it ends or stops."""
        ...

    def child_can_go_on(self, run_id: str, now: datetime) -> bool:
        """Whether a stopped child has something to go on with (a due timer, a message)."""
        ...

    def cancel_child(self, run_id: str, message_id: str, reason: str, now: datetime) -> None:
        """Ask a child run to cancel, durably, through its inbox (``message_id``: once)."""
        ...


@dataclass(slots=True)
class _StoppedChild:
    """A child that stopped without ending (WAITING or BLOCKED): the run waits with it."""

    run_id: str
    until: datetime | None
    reason: str
    #: Why it is BLOCKED (its code raised a bug), if it is.
    blocked: Failure | None = None


#: The events that record a message (a tuple built once: ``A | B`` makes a union per event).
_MESSAGE_EVENTS: Final = (SignalReceived, CancelRequested, UpdateAccepted, UpdateCompleted)

#: The latest heartbeat details of an attempt are recorded at most this often (seconds).
HEARTBEAT_RECORD_INTERVAL: Final = 1.0

#: A call issued now, without a schedule_to_close_timeout: its first attempt, at once (one
#: for all: nothing changes it).
_AT_ONCE: Final = InFlight()

#: The longest a run's loop goes on taking reports without handing the event loop a turn
#: (seconds): activities that finish as they start report with no wait at all.
_TURN: Final = 0.005

_IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("8a6f2d1e-53c4-4b0a-9f62-7e1f0c9d3b5a")
_NAMESPACE_BYTES: Final = _IDEMPOTENCY_NAMESPACE.bytes


def key_prefix(run_id: str, seed: int) -> str:
    """What a run's idempotency keys begin with: ``uuid5(_IDEMPOTENCY_NAMESPACE,
    f"{run_id}/{seed}").hex``, unique to the run, stable across its attempts and resumes.

    Computed as `uuid.uuid5` does, without its UUID object (whose checks cost more than the
    hash): the first 16 bytes of the SHA-1, with the version (5) and the variant set."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{run_id}/{seed}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # the version, in the high nibble of byte 6
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant, the high bits of byte 8
    return digest.hex()


def new_instance(
    definition: WorkflowDefinition, started: WorkflowStarted, recorded: RecordedRun | None
) -> tuple[WorkflowInstance, list[Any], dict[str, Any]]:
    """A fresh instance of the run's workflow and its decoded entrypoint arguments."""
    args, kwargs = definition.decode_input(raw(started.input))
    instance = WorkflowInstance(
        definition,
        run_id=started.run_id,
        seed=started.seed,
        start_time=started.time,
        max_payload=started.max_payload,
        recorded=recorded.command if recorded is not None else (lambda seq: None),
        continue_as_new_at=started.continue_as_new_at,
    )
    return instance, args, kwargs


def replay_only(definition: WorkflowDefinition, events: list[Event]) -> tuple[RecordedRun, Replay]:
    """Replay a run's events against today's code, running and writing nothing."""
    return _after_replay(definition, events, lambda instance, recorded, found: (recorded, found))


def query_history(
    definition: WorkflowDefinition, events: list[Event], name: str, input_data: bytes
) -> Any:
    """Replay a run's events, then ask its query handler ``name``: nothing runs or is written."""
    return _after_replay(definition, events, lambda instance, *_: instance.query(name, input_data))


def pending_inputs(
    definition: WorkflowDefinition, events: list[Event]
) -> dict[str, type[BaseModel]]:
    """The inputs (`wait_for_input`) a run waits for, by label, found by replaying it."""
    return _after_replay(definition, events, lambda instance, *_: instance.pending_inputs)


def _after_replay(
    definition: WorkflowDefinition,
    events: list[Event],
    look: Callable[[WorkflowInstance, RecordedRun, Replay], T],
) -> T:
    """Replay ``events`` into a fresh instance, then ``look`` at what it found."""
    started = events[0]
    assert isinstance(started, WorkflowStarted)
    recorded = RecordedRun(started.run_id, events)
    instance, args, kwargs = new_instance(definition, started, recorded)
    try:
        found = recorded.replay(instance, args, kwargs)
        return look(instance, recorded, found)
    finally:
        instance.close()


class RunEngine:
    """Executes one run: replay its history, then go on until it ends or has to stop."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        history: History,
        writer: HistoryWriter,
        clock: Clock,
        *,
        max_wait: float | None = None,
        inbox: Inbox | None = None,
        children: ChildRuns | None = None,
        ask: InputPrompt | None = None,
    ) -> None:
        """``max_wait``: a run whose next timer is further away stops WAITING instead of
        waiting in this process (None: it waits here, however long). ``inbox``: where messages
        to the run arrive. ``children``: where child runs are carried out. ``ask``: asks a
        person for an input the workflow waits for, instead of stopping to wait for it."""
        started = history.started
        if started.workflow != definition.name:
            raise NonDeterminismError(
                f"run {started.run_id} is a run of workflow {started.workflow!r}, but its target "
                f"{started.target} now defines {definition.name!r}; resume it with the code that "
                "defines it",
                run_id=started.run_id,
                event_id=1,
                recorded=started.workflow,
                requested=definition.name,
            )
        self.definition = definition
        self.history = history
        self.run_id = started.run_id
        self._started = started
        self._writer = writer
        self._clock = clock
        self._queue = _Reports()
        self._executions: dict[int, asyncio.Task[None]] = {}
        #: Results of completed activities, validated by their attempt, until delivered.
        self._decoded: dict[int, Any] = {}
        self._activities: set[int] = set()
        #: Activities recorded as starting, started at the end of the `_issue` under way.
        self._starting: dict[int, tuple[ScheduleActivity, InFlight, bool]] = {}
        self._timer_dues: dict[int, datetime] = {}
        self._max_wait = max_wait
        self._inbox = inbox
        self._inbox_offset = 0
        #: Stops the watch on the run's inbox (`wfrun.local.inbox.watch`).
        self._inbox_watch: Callable[[], None] | None = None
        #: Messages already recorded (by id): each reaches the workflow once.
        self._delivered = {e.message for e in history.events if isinstance(e, _MESSAGE_EVENTS)}
        self._answered = {e.message for e in history.events if isinstance(e, UpdateCompleted)}
        self._handlers = set(definition.handlers)
        self._instance: WorkflowInstance | None = None
        #: Threads of plain def attempts still running: cancelled or not, they run on.
        self.threads: set[Future[Any]] = set()
        # Unique to this run (its id and seed), stable across attempts and resumes.
        self._key_prefix = key_prefix(self.run_id, started.seed)
        self._deadline: asyncio.Task[None] | None = None
        self._children = children
        #: Child runs in flight (by seq), and those that stopped without ending.
        self._child_runs: dict[int, str] = {}
        self._stopped_children: dict[int, _StoppedChild] = {}
        #: Children asked to cancel: carried on here until they end, no longer awaited.
        self._detached: set[int] = set()
        self._ended = False
        self._ask = ask
        self._asking: asyncio.Task[None] | None = None
        self._asking_label: str | None = None

    async def run(self) -> RunOutcome:
        """Replay, then execute until the workflow ends; CancelledError leaves it resumable."""
        if self.history.terminal is not None:
            return RunOutcome.from_terminal(self.run_id, self.history.terminal)
        recorded = RecordedRun(self.run_id, self.history.events)
        _check_structure(recorded, self.history)
        instance, args, kwargs = new_instance(self.definition, self._started, recorded)
        try:
            instance.watch_replay = False  # a resume replays everything, each time: keep it cheap
            try:
                replay = recorded.replay(instance, args, kwargs)  # raises before any write
            except NonDeterminismError as exc:
                raise self._diagnosed(exc) from None
            self._writer.repair_tail(self.history)
            if len(self.history.events) > 1 or self.history.torn_tail:
                self._writer.append(
                    RunResumed, wfrun_version=__version__, repaired=self.history.note
                )
            with watching():
                outcome = await self._live(instance, recorded, replay)
            # Its last event (it ended, waits or is blocked) is durable before anyone is told.
            await self._writer.sync_aside(last=True)
            return outcome
        finally:
            await self._stop_executions()
            self._writer.flush()
            instance.close()

    def _diagnosed(self, error: NonDeterminismError) -> NonDeterminismError:
        """``error``, told apart: a resume replays unwatched (to stay cheap), so on a mismatch
        the history is replayed once more under the guard, which sees whether the code called
        something that is not deterministic (`random.random()`) rather than being edited."""
        if seen(self.definition.name) or not self.definition.determinism_warnings:
            return error
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeterminismWarning)  # warned when it ran live
                replay_only(self.definition, self.history.events)
        except NonDeterminismError as again:
            return again
        except Exception:
            return error  # the diagnosis is a courtesy: the first error stands
        return error

    # -- live --------------------------------------------------------------------------------

    def _deadline_due(self) -> datetime | None:
        timeout = self._started.execution_timeout
        return None if timeout is None else self._started.time + timedelta(seconds=timeout)

    async def _live(
        self, instance: WorkflowInstance, recorded: RecordedRun, replay: Replay
    ) -> RunOutcome:
        now = self._clock.now()
        due = self._deadline_due()
        if due is not None and now >= due and not instance.done:
            return self._time_out()  # before anything starts again
        for seq, event in recorded.commands.items():
            if isinstance(event, ChildWorkflowStarted) and seq not in recorded.resolved:
                self._carry_on_child(seq, event.run_id, instance, recorded)
                continue
            if seq in replay.cancelled or recorded.was_cancelled(seq) or not instance.awaits(seq):
                continue
            if isinstance(event, ActivityScheduled):
                command = instance.activity_command(seq)
                if command is not None:
                    self._start_activity(command, recorded.in_flight(seq, now))
            elif isinstance(event, TimerStarted):
                self._start_timer(seq, parse_ts(event.due))
        self._instance = instance
        self._issue(replay.backlog)
        # Those a crash cut off before their answer was recorded.
        if self._answer_updates(instance):
            await self._writer.sync_aside()
        else:
            self._writer.flush()
        self._start_deadline()
        self._take_messages()
        if self._inbox is not None:
            self._inbox_watch = watch_inbox(self._inbox, self._messages_arrived)

        queue = self._queue
        reports = queue._items  # the same list for the run's life: read here, a frame less
        turn_ends = monotonic() + _TURN
        while not instance.done:
            if reports:
                # Reports came without a wait (an activity that finished as it started):
                # the loop's other work (timers, other runs, the watchdog) gets a turn now
                # and then all the same.
                if monotonic() >= turn_ends:
                    await asyncio.sleep(0)
                    turn_ends = monotonic() + _TURN
            else:
                waiting = self._nothing_to_do_here()
                if waiting is None:
                    # It waits here (a timer, an input's timeout): a person may answer meanwhile.
                    self._ask_for_input(instance)
                elif not self._take_messages() and not self._ask_for_input(instance):
                    blocked = self._blocked_child()
                    if blocked is not None:
                        return self._record_block(*blocked)
                    return self._stop_to_wait(*waiting)
            if not reports and self._activities.isdisjoint(self._executions):
                self._writer.park()  # it waits (a timer, a message, a child): no descriptor
            if not reports:
                await queue.arrival()
                turn_ends = monotonic() + _TURN
            batch = queue.take()
            appended: list[Event] = []
            # Reports taken together are recorded in one instant (one clock reading for all).
            ts = self._writer.stamp() if len(batch) > 1 else None
            for item in batch:
                if type(item) is tuple:  # an event to record: nearly always
                    cls, fields = item
                    appended.append(self._writer.append(cls, ts, **fields))
                elif isinstance(item, _Expired):
                    return self._time_out()
                elif isinstance(item, BaseException):
                    raise item
                # else a `_Wake`: the loop looks again, as it does now
            # Durable before anything the workflow does with it leaves the run. Alone, the
            # disk flushes while the workflow takes its next step (an attempt waits for it
            # before it runs: `_RecordedAttempts.starting`): no coroutine to make, no wait
            # for the disk unless there is nothing else to do.
            if syncs.crowded():
                await self._writer.sync_aside()
                # That wait handed the event loop its turn: the next report taken without
                # one begins a turn of its own (else, in a crowd that takes longer than
                # `_TURN` to go round, every step would hand the loop a second turn).
                turn_ends = monotonic() + _TURN
            else:
                self._writer.sync_soon()
            decoded = self._decoded
            answered = False
            for delivered in appended:
                if isinstance(delivered, StepEvent):
                    self._executions.pop(delivered.seq, None)
                    if self._timer_dues:  # most runs have no timer or child in flight
                        self._timer_dues.pop(delivered.seq, None)
                    if self._child_runs:
                        self._child_runs.pop(delivered.seq, None)
                if isinstance(delivered, ActivityCompleted) and delivered.seq in decoded:
                    instance.apply(delivered, decoded=decoded.pop(delivered.seq))
                else:
                    instance.apply(delivered)
                commands = instance.take_commands()
                if commands:  # most outcomes, of a fan-out's calls, issue none
                    self._issue(commands)
                if instance.update_results:  # read, not asked: most steps answer none
                    answered |= self._answer_updates(instance)
            if answered:  # read by whoever asked, who takes it as done: durable first
                await self._writer.sync_aside()
            else:
                self._writer.flush()
        return self._finish(instance)

    def _nothing_to_do_here(self) -> tuple[str, datetime | None] | None:
        """Why the run should stop and wait, and until when; None while it should go on here.

        It goes on while an activity runs, or while the next timer (or the deadline) is due
        within ``max_wait``; a longer wait, or one that only a message can end, is a state.
        """
        if not self._activities.isdisjoint(self._executions):
            return None  # an activity runs here
        if any(seq not in self._stopped_children for seq in self._child_runs):
            return None  # a child runs here
        if self._is_asking():
            return None  # a person is answering
        now = self._clock.now()
        if self._children is not None and any(
            self._children.child_can_go_on(child.run_id, now)
            for child in self._stopped_children.values()
        ):
            return None  # a stopped child went on meanwhile (elsewhere): its poll sees it soon
        deadline = self._deadline_due() if self._deadline is not None else None
        children = [c.until for c in self._stopped_children.values() if c.until is not None]
        dues = [*self._timer_dues.values(), *children, *([deadline] if deadline else [])]
        if not dues:
            for child in self._stopped_children.values():
                return f"child run {child.run_id} {child.reason}", None
            assert self._instance is not None
            inputs = ", ".join(map(repr, self._instance.pending_inputs))
            if inputs:
                return (
                    f"the workflow waits for input {inputs}: `wfrun signal {self.run_id} "
                    "LABEL JSON` gives it",
                    None,
                )
            return "the workflow waits on a condition that only a message can change", None
        until = min(dues)
        if self._max_wait is None or (until - now).total_seconds() <= self._max_wait:
            return None
        what = "its deadline" if until == deadline else "its next timer"
        if until in children:
            what = "the next timer of a child run"
        return f"{what} is due at {format_ts(until)}", until

    def _stop_to_wait(self, reason: str, until: datetime | None) -> RunOutcome:
        # Timers still pending stay pending in the history: a resume starts them again.
        event = self._writer.append(
            RunWaiting,
            reason=reason,
            until=format_ts(until) if until is not None else None,
            inbox=self._inbox_offset,
        )
        return RunOutcome(self.run_id, RunStatus.WAITING, reason=reason, until=event.until)

    # -- messages ----------------------------------------------------------------------------

    def _take_messages(self) -> bool:
        """Queue the messages that reached the inbox since the last look; True if any did."""
        if self._inbox is None:
            return False
        assert self._instance is not None
        messages, self._inbox_offset = self._inbox.read(self._inbox_offset)
        taken = False
        for message in messages:
            if message.id in self._delivered or message.kind not in ("signal", "cancel", "update"):
                continue
            self._delivered.add(message.id)
            if message.kind != "cancel" and not self._handles(message):
                if message.kind == "signal" and message.name in self._instance.answered_inputs:
                    continue  # a second answer to an input (the terminal's, a signal's)
                # Sent to code that had this handler; today's code has not: never delivered.
                logging.getLogger("wfrun").warning(
                    "run %s: skipped %s %r from its inbox: the workflow defines no such %s",
                    self.run_id,
                    message.kind,
                    message.name,
                    message.kind,
                )
                continue
            if message.kind == "update":
                self._take_update(message)
            elif message.kind == "cancel":
                reason = message.input.get("reason")
                fields = {"message": message.id, "reason": reason}
                self._queue.put_nowait((CancelRequested, fields))
            else:
                fields = {"message": message.id, "name": message.name, "input": message.input}
                self._queue.put_nowait((SignalReceived, fields))
            taken = True
        return taken

    def _handles(self, message: Message) -> bool:
        """Whether today's code takes the message: it has the handler, or the signal answers
        an input the workflow waits for (and fits its schema)."""
        if (message.kind, message.name) in self._handlers:
            return True
        assert self._instance is not None
        schema = self._instance.pending_input(message.name) if message.kind == "signal" else None
        if schema is None:
            return False
        try:
            schema.model_validate(message.input)
        except ValueError:
            return False
        return True

    def _ask_for_input(self, instance: WorkflowInstance) -> bool:
        """With a person at hand, ask for the first input the workflow waits for; the answer
        goes through the run's inbox like any signal. False when there is nobody to ask."""
        if self._ask is None and self._asking is None:
            return False  # nobody to ask, nobody asked (the common case: checked first, cheaply)
        pending = instance.pending_inputs
        if self._asking is not None and not self._asking.done():
            # One form at a time. One whose input came otherwise (a signal, or its timeout)
            # stays on the terminal, but asks for nothing: the run may stop.
            return self._is_asking()
        if self._ask is None or self._inbox is None or not pending:
            return False
        label, schema = next(iter(pending.items()))
        self._asking_label = label
        self._asking = asyncio.create_task(
            self._guarded(self._ask_person, label, schema), name=f"wfrun input {label}"
        )
        return True

    def _is_asking(self) -> bool:
        """Whether a person is being asked for an input the workflow still waits for."""
        return (
            self._asking is not None
            and not self._asking.done()
            and self._instance is not None
            and self._asking_label in self._instance.pending_inputs
        )

    async def _ask_person(self, label: str, schema: type[BaseModel]) -> None:
        assert self._ask is not None
        assert self._inbox is not None
        # The form goes out to a person: what the workflow saw before it asked is durable.
        self._writer.settle()
        try:
            answer = await _in_daemon_thread(self._ask, label, schema)
        except (EOFError, OSError):  # the terminal went away: wait as if there were none
            self._ask = None
            self._queue.put_nowait(_Wake())
            return
        now = format_ts(self._clock.now())
        self._inbox.post("signal", label, orjson.dumps(answer), now)
        if not self._take_messages():  # answered meanwhile, by a signal: look again
            self._queue.put_nowait(_Wake())

    def _take_update(self, message: Message) -> None:
        """Validate an update against the run's state now: refused, it is answered at once."""
        assert self._instance is not None
        data = orjson.dumps(message.input)
        refused = self._instance.validate_update(message.name, data)
        if refused is None:
            fields = {"message": message.id, "name": message.name, "input": message.input}
            self._queue.put_nowait((UpdateAccepted, fields))
            return
        self._writer.append(
            UpdateCompleted, message=message.id, error=Failure.of(refused).record(), rejected=True
        )
        self._answered.add(message.id)
        self._writer.sync()

    def _answer_updates(self, instance: WorkflowInstance) -> bool:
        """Record the answers of the updates the workflow handled; True if there were any."""
        answered = False
        for message, value, exc in instance.take_update_results():
            if message in self._answered:
                continue  # answered before: this is its replay
            self._answered.add(message)
            answered = True
            if exc is None:
                try:
                    data = encode(value, subject="the answer of an update")
                except PayloadError as error:
                    exc = error
                else:
                    self._writer.append(UpdateCompleted, message=message, result=Encoded(data))
                    continue
            self._writer.append(UpdateCompleted, message=message, error=Failure.of(exc).record())
        return answered

    def _messages_arrived(self) -> None:
        # Called by the inbox watch, on the loop: a failure stops this run, not the watch.
        try:
            self._take_messages()
        except BaseException as exc:
            self._queue.put_nowait(exc)

    def _issue(self, commands: list[Command]) -> None:
        # Calls scheduled one after another (nothing but their events in between) are
        # recorded in one instant: one clock reading for all of them and their starts.
        ts: str | None = None
        for command in commands:
            if isinstance(command, ScheduleActivity):
                definition = command.definition
                ts = self._writer.append_scheduled(
                    command.seq, definition.name, Encoded(command.input), ts
                )
                # Only a schedule_to_close_timeout counts from the scheduling: parsed for it.
                timed = definition.options.schedule_to_close_timeout is not None
                self._start_activity(
                    command, InFlight(scheduled=parse_ts(ts)) if timed else _AT_ONCE, ts
                )
                continue
            ts = None  # anything else may take time (a sync to settle, a child's inbox)
            if isinstance(command, StartTimer):
                self._writer.append(
                    TimerStarted,
                    seq=command.seq,
                    duration=round(command.duration, 6),
                    due=format_ts(command.due),
                )
                self._start_timer(command.seq, command.due)
            elif isinstance(command, RecordMarker):
                self._writer.append(
                    MarkerRecorded, seq=command.seq, name=command.name, value=command.value
                )
            elif isinstance(command, CancelActivity):
                self._cancel(command.seq)
                self._writer.append(ActivityCanceled, seq=command.seq)
            elif isinstance(command, CancelTimer):
                self._cancel(command.seq)
                self._writer.append(TimerCanceled, seq=command.seq)
            elif isinstance(command, StartChild):
                self._writer.append(
                    ChildWorkflowStarted,
                    seq=command.seq,
                    workflow=command.definition.name,
                    run_id=command.run_id,
                    target=command.target,
                    input=Encoded(command.input),
                )
                self._start_child(command)
            elif isinstance(command, CancelChild):
                self._detach_child(command.seq, f"run {self.run_id} stopped waiting for it")
        self._start_activities()

    def _start_deadline(self) -> None:
        due = self._deadline_due()
        if due is None:
            return

        async def expire() -> None:
            await sleep_until(self._clock, due)
            self._queue.put_nowait(_Expired())

        self._deadline = asyncio.create_task(expire(), name=f"wfrun deadline {self.run_id}")

    def _time_out(self) -> RunOutcome:
        self._cancel_the_rest()
        timeout = self._started.execution_timeout
        assert timeout is not None
        event = self._writer.append(WorkflowTimedOut, timeout=timeout)
        self._ended = True
        return RunOutcome.from_terminal(self.run_id, event)

    def _finish(self, instance: WorkflowInstance) -> RunOutcome:
        value, exc = instance.outcome()
        if isinstance(exc, ContinueAsNewError):
            return self._continue_as_new(exc.input)
        data = None
        if exc is None:
            try:
                data = encode(value, subject=f"the result of workflow {self.definition.name!r}")
                check_size(
                    data,
                    limit=self._started.max_payload,
                    workflow=self.definition.name,
                    side="output",
                )
                self.definition.decode_result(data)
            except PayloadError as error:
                exc = error.with_traceback(None)
            except Exception as error:
                annotation = self.definition.signature.result_annotation
                exc = WfrunError(
                    f"the result of workflow {self.definition.name!r} does not match its return "
                    f"annotation {annotation_name(annotation)}: {explain(error)}; "
                    f"{result_advice(annotation, value)}"
                )
        if exc is not None and not self._ends_the_run(exc, instance):
            return self._block(exc)
        self._cancel_the_rest()
        if instance.cancel_requested is not None and isinstance(exc, asyncio.CancelledError):
            event: Event = self._writer.append(WorkflowCanceled, reason=instance.cancel_requested)
        elif exc is None and data is not None:
            event = self._writer.append(WorkflowCompleted, result=Encoded(data))
        else:
            assert exc is not None
            event = self._writer.append(WorkflowFailed, error=Failure.of(exc).record())
        self._ended = True
        return RunOutcome.from_terminal(self.run_id, _readable(event))

    def _continue_as_new(self, input_data: bytes) -> RunOutcome:
        self._cancel_the_rest()
        event = self._writer.append(
            WorkflowContinuedAsNew,
            run_id=new_run_id(self.definition.name, self._clock),
            input=Encoded(input_data),
        )
        self._ended = True
        return RunOutcome.from_terminal(self.run_id, event)

    def _ends_the_run(self, exc: BaseException, instance: WorkflowInstance) -> bool:
        """Only an application failure (or the cancellation asked for) ends a run; any other
        exception is a bug in the code, which can be fixed and the run carried on."""
        if instance.cancel_requested is not None and isinstance(exc, asyncio.CancelledError):
            return True
        if isinstance(exc, ApplicationError | ActivityError | WorkflowFailedError):
            return True
        listed = self.definition.failure_exception_types
        return any(name in listed for name in failure_type_names(exc))

    def _block(self, exc: BaseException) -> RunOutcome:
        # What is in flight is left as it is (not recorded cancelled): the fixed code will
        # replay to this point and may wait for it again.
        return self._record_block(Failure.of(exc))

    def _blocked_child(self) -> tuple[Failure, str] | None:
        """A run that can only wait for a BLOCKED child is blocked too: its code (the child's)
        must be fixed, and a wait would hide that (exit 75 instead of 3). One with a timer of
        its own can still move on when it fires: it waits for that."""
        if self._timer_dues:
            return None
        for child in self._stopped_children.values():
            if child.blocked is not None:
                blocked = child.blocked
                message = f"child run {child.run_id} is BLOCKED: {blocked.message}"
                return dataclasses.replace(blocked, message=message), child.run_id
        return None

    def _record_block(self, failure: Failure, child: str | None = None) -> RunOutcome:
        # The fingerprint of this run's own module: resume --all retries it once that changed;
        # a blocked child whose code changed brings its parent along (`runs.carrier_of`), and
        # one carried on by itself meanwhile lets its parent go on (`RunInfo.unblocked`).
        module = sys.modules.get(self.definition.cls.__module__)
        self._writer.append(
            RunBlocked,
            error=failure.record(),
            code=fingerprint(getattr(module, "__file__", None)),
            child=child,
        )
        return RunOutcome(self.run_id, RunStatus.BLOCKED, error=failure)

    # -- executions on the real loop ---------------------------------------------------------

    def _start_activity(
        self, command: ScheduleActivity, state: InFlight, ts: str | None = None
    ) -> None:
        """Record the activity's start; it starts at the end of the `_issue` under way.
        ``ts``: its scheduling's time, when it was just scheduled (the same instant)."""
        self._activities.add(command.seq)
        announced = state.due is None
        if announced:  # starts right away: recorded in the same write as its scheduling
            self._writer.append_started(command.seq, state.attempt, ts)
        self._starting[command.seq] = (command, state, announced)

    def _start_activities(self) -> None:
        """Start the activities recorded as starting, once their events are handed to the OS.

        An activity's first step runs as it starts (`start_eagerly`): what it does there
        comes after its scheduling and start are written (one write for all of those issued
        together), as it did when a later turn of the loop started it.
        """
        if not self._starting:
            return
        self._writer.flush()
        starting, self._starting = self._starting, {}
        for seq, (command, state, announced) in starting.items():
            self._executions[seq] = start_eagerly(
                self._execute_activity(command, state, announced),
                f"wfrun activity {command.definition.name}#{seq}",
            )

    def _start_timer(self, seq: int, due: datetime) -> None:
        self._timer_dues[seq] = due
        self._executions[seq] = asyncio.create_task(
            self._guarded(self._execute_timer, seq, due), name=f"wfrun timer #{seq}"
        )

    def _cancel_the_rest(self) -> None:
        """The run ends: cancel what still runs (nobody will await it) and record it.

        Children are asked to cancel and carried on until they have (see `_stop_executions`).
        """
        for seq in list(self._executions):
            if seq in self._child_runs:
                if seq not in self._detached:
                    self._detach_child(seq, f"run {self.run_id} ended")
                continue
            self._cancel(seq)
            kind = ActivityCanceled if seq in self._activities else TimerCanceled
            self._writer.append(kind, seq=seq)

    def _cancel(self, seq: int) -> None:
        if seq in self._activities and seq in self._executions:
            # Its body learns it (and may act on it): what the workflow saw before is durable.
            self._writer.settle()
        self._timer_dues.pop(seq, None)
        self._starting.pop(seq, None)  # issued and cancelled at once: it never starts
        task = self._executions.pop(seq, None)
        if task is not None:
            task.cancel()

    async def _stop_executions(self) -> None:
        if self._ended:
            # Children asked to cancel when the run ended: they clean up and end, here.
            cancelling = [self._executions[s] for s in self._detached if s in self._executions]
            if cancelling:
                await asyncio.wait(cancelling)
        tasks = list(self._executions.values())
        if self._deadline is not None:
            tasks.append(self._deadline)
        if self._inbox_watch is not None:
            self._inbox_watch()
        if self._asking is not None:
            tasks.append(self._asking)  # its thread waits on the terminal; it is a daemon
        self._executions.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def _guarded(self, work: Callable[..., Awaitable[None]], *args: Any) -> None:
        # The coroutine is made here, not by the caller: a task cancelled before it ever ran
        # (the run stopped at once) then leaves no coroutine behind that was never awaited.
        try:
            await work(*args)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # an engine fault: stop the run, loudly
            self._queue.put_nowait(exc)

    # -- children ----------------------------------------------------------------------------

    def _carry_on_child(
        self,
        seq: int,
        run_id: str,
        instance: WorkflowInstance,
        recorded: RecordedRun,
    ) -> None:
        """A resume finds a child that had not ended: carry it on, awaited or not.

        It is carried on through the command that started it: a crash may have come before
        its history was created (then it is created now), and an existing run is taken only
        if it is that very child (same workflow, input and parent).
        """
        if not instance.awaits(seq):
            if recorded.was_cancelled(seq):
                self._detached.add(seq)
            else:
                # The code stopped waiting for it (replay found the cancel) before a crash
                # recorded that: ask the child to cancel now.
                self._detach_child(seq, f"run {self.run_id} stopped waiting for it", run_id)
        command = instance.child_command(seq)
        assert command is not None  # replay had the code issue it again, or raised
        self._start_child(command)

    def _start_child(self, command: StartChild) -> None:
        if self._children is None:
            raise WfrunError(f"run {self.run_id} starts a child run, but nothing can run one here")
        self._writer.settle()  # what the workflow saw before it asked for the child is durable
        self._child_runs[command.seq] = command.run_id
        self._executions[command.seq] = asyncio.create_task(
            self._guarded(self._execute_child, command),
            name=f"wfrun child {command.run_id}",
        )

    def _detach_child(self, seq: int, reason: str, run_id: str | None = None) -> None:
        """Ask a child to cancel (durably, once), record that, and stop awaiting it."""
        assert self._children is not None
        self._writer.settle()  # what the workflow saw before it let the child go is durable
        run_id = run_id or self._child_runs[seq]
        message_id = f"{self._key_prefix[:16]}-cancel-{seq}"
        self._children.cancel_child(run_id, message_id, reason, self._clock.now())
        self._writer.append(ChildWorkflowCancelRequested, seq=seq, run_id=run_id)
        self._detached.add(seq)

    async def _execute_child(self, command: StartChild) -> None:
        assert self._children is not None
        seq = command.seq
        while True:
            try:
                outcome = await self._children.run_child(
                    command,
                    parent=self.run_id,
                    clock=self._clock,
                    max_wait=self._max_wait,
                    ask=self._ask,
                )
            except RunLockedError:  # resumed on its own elsewhere: carry on once it is let go
                await asyncio.sleep(POLL)
                continue
            if outcome.status.ended:
                break
            if seq in self._detached:
                self._let_go(seq)
                return
            blocked = outcome.error if outcome.status is RunStatus.BLOCKED else None
            what = (
                f"is BLOCKED: {blocked.describe()}"
                if blocked is not None
                else f"waits: {outcome.reason}"
            )
            until = parse_ts(outcome.until) if outcome.until else None
            self._stopped_children[seq] = _StoppedChild(outcome.run_id, until, what, blocked)
            self._queue.put_nowait(_Wake())
            try:
                # Polled: a message's sender is another process, a due time comes on its own.
                can_go_on = self._children.child_can_go_on
                while not can_go_on(outcome.run_id, self._clock.now()):
                    if seq in self._detached:  # asked to cancel meanwhile: not awaited any more
                        self._let_go(seq)
                        return
                    await asyncio.sleep(POLL)
            finally:
                del self._stopped_children[seq]
        if outcome.status is RunStatus.COMPLETED:
            fields: dict[str, Any] = {
                "seq": seq,
                "run_id": outcome.run_id,
                "result": Encoded(dumps(outcome.result)),
            }
            self._queue.put_nowait((ChildWorkflowCompleted, fields))
        else:
            assert outcome.error is not None
            fields = {
                "seq": seq,
                "run_id": outcome.run_id,
                "status": str(outcome.status),
                "error": outcome.error.record(),
            }
            self._queue.put_nowait((ChildWorkflowFailed, fields))

    def _let_go(self, seq: int) -> None:
        """A child asked to cancel stopped before its cancel reached it (it may be BLOCKED):
        nobody awaits it any more; whoever resumes it delivers that."""
        self._executions.pop(seq, None)
        self._child_runs.pop(seq, None)
        self._queue.put_nowait(_Wake())

    async def _execute_timer(self, seq: int, due: datetime) -> None:
        await sleep_until(self._clock, due)
        self._queue.put_nowait((TimerFired, {"seq": seq}))

    async def _execute_activity(
        self, command: ScheduleActivity, state: InFlight, announced: bool
    ) -> None:
        # Guarded here, as `_guarded` guards the other executions (a frame less a step): it
        # is started at once (`start_eagerly`), so its coroutine is never left unawaited.
        try:
            definition = command.definition
            options = definition.options
            # The attempts' hooks and their heartbeats' recorder: one object for the call.
            recorder = _RecordedAttempts(self._writer, command.seq, self._queue, announced)
            if state.due is not None:
                await sleep_until(self._clock, state.due)
            info = ActivityInfo(
                run_id=self.run_id,
                activity_id=command.seq,
                name=definition.name,
                attempt=state.attempt,
                idempotency_key=f"{self._key_prefix}-{command.seq}",
                workflow_name=self.definition.name,
                start_to_close_timeout=options.start_to_close_timeout,
                heartbeat_timeout=options.heartbeat_timeout,
            )
            try:
                attempt, outcome = await attempt_until_final(
                    definition,
                    command.values,
                    info,
                    max_payload=options.max_payload or self._started.max_payload,
                    heartbeats=Heartbeats(encoded=state.heartbeat_details, recorder=recorder),
                    clock=self._clock,
                    hooks=recorder,
                    threads=self.threads,
                    deadline=_schedule_deadline(options, state),
                )
            finally:
                # Read here, not asked: a flush with nothing to do is a frame a step for nothing.
                if recorder._pending is not None or recorder._timer is not None:
                    recorder.flush()
            if outcome.error is None:
                assert outcome.result is not None
                fields = {
                    "seq": command.seq,
                    "attempt": attempt,
                    "duration": round(outcome.duration, 6),
                    "result": Encoded(outcome.result),
                }
                # The attempt validated the result against the annotation: delivered as is.
                self._decoded[command.seq] = outcome.value
                self._queue.put_nowait((ActivityCompleted, fields))
            else:
                self._queue.put_nowait(_failure_event(command.seq, attempt, outcome, None))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # an engine fault: stop the run, loudly
            self._queue.put_nowait(exc)


class _RecordedAttempts:
    """The engine's side of one activity call: its attempts' hooks into the retry loop (each
    attempt's start and retry, recorded), and the recorder of its latest heartbeat details,
    at most once per interval, durably (one object for both: one made per call)."""

    def __init__(self, writer: HistoryWriter, seq: int, fail: _Reports, announced: bool) -> None:
        self._writer = writer
        self._seq = seq
        #: Where a failed heartbeat's write goes: it runs in loop callbacks, where raising
        #: reaches nobody (the run's reports: the engine stops the run with it).
        self._fail = fail
        #: The first attempt's start was recorded already (with its scheduling).
        self._announced = announced
        self.attempt = 1
        self._pending: bytes | None = None
        self._last = _NEVER
        self._timer: asyncio.TimerHandle | None = None

    def starting(self, attempt: int) -> None:
        # What the workflow saw before it made the call is durable before the call runs
        # (the run's last sync may still be under way: see `HistoryWriter.sync_soon`).
        self._writer.settle()
        self.attempt = attempt
        if self._announced:
            self._announced = False
            return
        self._writer.append_started(self._seq, attempt)
        self._writer.flush()

    def retrying(self, attempt: int, outcome: Outcome, delay: float) -> None:
        self.flush()
        cls, fields = _failure_event(self._seq, attempt, outcome, delay)
        self._writer.append(cls, **fields)
        self._writer.flush()

    def __call__(self, details: bytes) -> None:
        """The attempt's latest heartbeat details (`Heartbeats.recorder`)."""
        self._pending = details
        loop = asyncio.get_running_loop()
        if loop.time() - self._last >= HEARTBEAT_RECORD_INTERVAL:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_at(self._last + HEARTBEAT_RECORD_INTERVAL, self.flush)

    def flush(self) -> None:
        """Record the latest heartbeat details not recorded yet, durably."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is None:
            return
        details, self._pending = self._pending, None
        try:
            self._writer.append(
                ActivityHeartbeat, seq=self._seq, attempt=self.attempt, details=Encoded(details)
            )
            self._writer.sync()
        except HistoryIOError as exc:
            self._fail.put_nowait(exc)  # the engine stops the run with it
            return
        self._last = asyncio.get_running_loop().time()


#: Never: the time of the heartbeat recorded before any was.
_NEVER: Final = float("-inf")


def _failure_event(
    seq: int, attempt: int, outcome: Outcome, delay: float | None
) -> tuple[type[StepEvent], dict[str, Any]]:
    common = {"seq": seq, "attempt": attempt, "duration": round(outcome.duration, 6)}
    retry_in = round(delay, 6) if delay is not None else None
    assert outcome.error is not None
    if outcome.timeout is not None:
        return ActivityTimedOut, {
            **common,
            "timeout": outcome.timeout,
            "limit": outcome.limit,
            "retry_in": retry_in,
            "message": outcome.error.message,
        }
    return ActivityFailed, {**common, "error": outcome.error.record(), "retry_in": retry_in}


def _schedule_deadline(options: ActivityOptions, state: InFlight) -> datetime | None:
    """When the call's schedule_to_close_timeout runs out: from its recorded scheduling, so
    that a resume does not start the count again."""
    timeout = options.schedule_to_close_timeout
    if timeout is None or state.scheduled is None:
        return None
    return state.scheduled + timeout


def _check_structure(recorded: RecordedRun, history: History) -> None:
    """Outcomes and attempts must belong to a recorded command: else the file was edited."""
    for event in history.events[1:]:
        if isinstance(event, StepEvent) and event.seq not in recorded.commands:
            raise HistoryCorruptError(
                f"{history.path}:{event.id}: {event.type} refers to command #{event.seq}, which no "
                "earlier event scheduled; the history is damaged. Nothing was changed",
                path=str(history.path),
                line=event.id,
            )


def _in_daemon_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Call ``function`` in a daemon thread: one blocked on a terminal never holds up the
    process's exit (an executor's threads would)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def work() -> None:
        try:
            value = function(*args)
        except BaseException as exc:  # handed to the awaiting task, which decides
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=work, daemon=True, name="wfrun input").start()
    return future


def _readable(event: Event) -> Event:
    """The terminal event with its payload as a plain JSON value."""
    if isinstance(event, WorkflowCompleted):
        return WorkflowCompleted(id=event.id, ts=event.ts, result=plain(event.result))
    return event
