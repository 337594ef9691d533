"""One workflow's code, running on its deterministic loop: calls in, commands out.

`WorkflowInstance` is the local implementation of the runtime seam (`wfrun.runtime`). It does
no I/O and reads no clock: workflow code's calls become numbered *commands* (schedule an
activity, start a timer, record a marker) that the engine takes with `take_commands`, and the
engine delivers outcomes back as history events through `apply`. Each `apply` sets the
workflow's clock to the event's time and runs the workflow as far as it can go; the engine
delivers one event at a time, in history order, live and on replay alike. That is the whole
of determinism here.
"""

from __future__ import annotations

import asyncio
import contextvars
import dis
import functools
import itertools
import logging
import os
import random as _random
import sys
import uuid
import weakref
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from ..errors import (
    ActivityError,
    ApplicationError,
    ContinueAsNewError,
    Failure,
    InputError,
    NonDeterminismError,
    NotAwaitedError,
    UsageError,
    WfrunError,
    WorkflowFailedError,
)
from ..events import (
    LIMIT,
    ActivityCompleted,
    ActivityFailed,
    ActivityTimedOut,
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    Event,
    MarkerRecorded,
    SignalReceived,
    TimerFired,
    UpdateAccepted,
    is_run_id,
)
from ..loader import target_of
from ..payload import abbreviate, check_size, encode_arguments, loads, raw
from ..runtime import WorkflowInfo, set_workflow_runtime
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
from .guard import Guard, unwatched
from .loop import WorkflowCall, WorkflowFuture, WorkflowLoop, WorkflowTimerHandle, current_task

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..definitions import ActivityDefinition, HandlerDefinition, WorkflowDefinition

#: `WorkflowInstance.apply` was given no validated result: it validates the recorded one.
_UNDECODED: Final[Any] = object()


class Replayer(Protocol):
    """The replay driving an instance, as the instance's fast path sees it."""

    def outcome_at_once(self, seq: int, commands: list[Command]) -> ActivityCompleted | None:
        """The next event to deliver, if it is activity ``seq``'s completion and every command
        in ``commands`` (issued, not yet checked) agrees with the history; else None. Raises
        nothing: a disagreement is left for the ordinary path to report."""
        ...

    def completion_at_once(self, seq: int, name: str, value: Any) -> ActivityCompleted | None:
        """The next event to deliver, if it is activity ``seq``'s completion and the history
        recorded call ``seq`` as activity ``name`` with the input ``value`` (decoded); else
        None. Raises nothing. Moves past the event it returns (a call less per replayed
        step than `take_outcome` after it): `put_back` if it is not delivered after all."""
        ...

    def put_back(self) -> None:
        """The event `completion_at_once` returned was not delivered: it is next again."""
        ...

    def take_outcome(self) -> None:
        """The event `outcome_at_once` returned was delivered: move past it."""
        ...


# -- the instance ----------------------------------------------------------------------------


class WorkflowInstance:
    """A run's workflow object and tasks, driven one history event at a time."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        *,
        run_id: str,
        seed: int,
        start_time: datetime,
        max_payload: int,
        recorded: Callable[[int], Event | None] = lambda seq: None,
        continue_as_new_at: int | None = None,
    ) -> None:
        self.definition = definition
        self.run_id = run_id
        self.max_payload = max_payload
        self.replaying = False
        #: Whether the determinism guard watches replayed steps too (`wfrun replay` does; a
        #: resume, which replays the whole history each time, does not).
        self.watch_replay = True
        self._now = start_time
        #: The time of the last replayed step, as its event wrote it, until something reads
        #: it (`time_now`): most steps of a replay never do, and parsing it cost each one.
        self._time_text: str | None = None
        self._start_time = start_time
        self._seed = seed
        #: Seeded on first use: most workflows never ask, and seeding costs ~10 µs a run.
        self._random: _random.Random | None = None
        self._recorded = recorded
        # asyncio's stubs mark the loop API abstract; the methods workflow code may not use
        # (sockets, subprocesses, signals) raise NotImplementedError, which is the point.
        self._conditions: list[tuple[Callable[[], bool], WorkflowFuture[None]]] = []
        # The loop asks `check_conditions` only while there are any.
        self._loop = WorkflowLoop(  # type: ignore[abstract]
            self, start_time.timestamp(), self._conditions
        )
        self._loop.set_exception_handler(self._unhandled)
        self._seq = 0
        self._commands: list[Command] = []
        #: Each call awaited: its future, its command, and its future's callback that
        #: cancels the call if the future is cancelled (`_activity_abandoned`).
        self._activities: dict[int, _Awaited] = {}
        self._timers: dict[int, WorkflowTimerHandle] = {}
        self._patches: dict[str, bool] = {}
        self._guard = Guard(definition.name, definition.determinism_warnings)
        self._main: asyncio.Task[Any] | None = None
        self._context = contextvars.copy_context()
        self._object: Any = None
        #: An error a signal handler raised, or a forgotten ``await`` (`NotAwaitedError`): it
        #: ends the run as if the entrypoint had raised it.
        self._handler_error: BaseException | None = None
        self._closed = False
        #: Why the run was asked to stop, once ``wfrun cancel`` reached it.
        self.cancel_requested: str | None = None
        #: Updates whose handler finished: (message id, value, exception), for the engine
        #: (`take_update_results`; read directly, whether there are any).
        self.update_results: list[tuple[str, Any, BaseException | None]] = []
        self._children: dict[int, tuple[WorkflowFuture[Any], StartChild]] = {}
        #: Every child the workflow started (by seq), awaited or not: how to start it again.
        self._child_commands: dict[int, StartChild] = {}
        #: Inputs the workflow waits for (`wait_for_input`), by label: the schema and the
        #: future the answer resolves.
        self._inputs: dict[str, tuple[type[BaseModel], WorkflowFuture[Any]]] = {}
        #: The id of the last event delivered: how long the history is, as the code saw it.
        self._history_length = 1
        self._continue_as_new_at = continue_as_new_at
        #: Set while a replay drives the instance: awaited activities may then be resolved at
        #: once from the history (`_settle_at_once`).
        self.replayer: Replayer | None = None

    # -- driving, for the engine -------------------------------------------------------------

    def start(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Create the workflow object and run its entrypoint as far as it goes."""
        context = contextvars.copy_context()
        context.run(set_workflow_runtime, self)
        self._context = context
        self._object = context.run(self.definition.cls)
        entry = self.definition.entrypoint.__get__(self._object)
        self._main = self._loop.create_task(entry(*args, **kwargs), context=context)
        self._run()

    def apply(self, event: Event, *, decoded: Any = _UNDECODED) -> None:
        """Deliver one resolution event and run the workflow as far as it goes.

        ``decoded``: an activity's result already validated against its annotation (by the
        attempt that returned it, live), so that it is not validated twice.
        """
        # The time is the event's, parsed only if read (`time_now`): most steps never do.
        self._time_text = event.ts
        self._history_length = event.id
        self._loop._now = None  # asked of `time_now` when read
        if isinstance(event, ActivityCompleted):
            self._complete_activity(event, decoded)
        elif isinstance(event, (ActivityFailed, ActivityTimedOut)):
            self._fail_activity(event)
        elif isinstance(event, TimerFired):
            handle = self._timers.pop(event.seq, None)
            if handle is not None:  # else the code cancelled it before it fired
                self._loop.fire(handle)
        elif isinstance(event, SignalReceived):
            self._deliver_signal(event)
        elif isinstance(event, UpdateAccepted):
            self._deliver_update(event)
        elif isinstance(event, CancelRequested):
            self.cancel_requested = event.reason or "cancelled"
            if self._main is not None and not self._main.done():
                self._main.cancel(self.cancel_requested)
        elif isinstance(event, ChildWorkflowCompleted | ChildWorkflowFailed):
            self._end_child(event)
        else:  # pragma: no cover - the engine only passes resolutions
            raise TypeError(f"not a resolution: {event.type}")
        self._loop.run_until_quiescent()  # `_run`, inline: a frame less each step

    def take_commands(self) -> list[Command]:
        commands, self._commands = self._commands, []
        if isinstance(self._handler_error, NotAwaitedError):
            # Nothing of the step that lost a call is recorded: the fixed code, which awaits
            # it, then replays to the same point and issues that step's commands itself.
            return []
        return commands

    def activity_command(self, seq: int) -> ScheduleActivity | None:
        """The command of an activity the workflow still awaits."""
        entry = self._activities.get(seq)
        return entry[1] if entry is not None else None

    def child_command(self, seq: int) -> StartChild | None:
        """The command that started child run ``seq``, whether the workflow still awaits it."""
        return self._child_commands.get(seq)

    def awaits(self, seq: int) -> bool:
        """Whether command ``seq`` was issued and still waits for its outcome."""
        return seq in self._activities or seq in self._timers or seq in self._children

    def pending_input(self, label: str) -> type[BaseModel] | None:
        """The schema of the input the workflow waits for under ``label``, if it does."""
        entry = self._inputs.get(label)
        return entry[0] if entry is not None and not entry[1].done() else None

    @property
    def answered_inputs(self) -> set[str]:
        """The labels of the inputs the workflow asked for and got."""
        return {label for label, (_, future) in self._inputs.items() if future.done()}

    @property
    def pending_inputs(self) -> dict[str, type[BaseModel]]:
        """Every input the workflow waits for now, by label."""
        return {label: schema for label, (schema, f) in self._inputs.items() if not f.done()}

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def done(self) -> bool:
        if self._handler_error is not None:
            return True
        return self._main is not None and self._main.done()

    def outcome(self) -> tuple[Any, BaseException | None]:
        """The entrypoint's return value, or the exception it (or a signal handler) ended with."""
        if self._handler_error is not None:
            return None, self._handler_error
        assert self._main is not None
        assert self._main.done()
        if self._main.cancelled():
            return None, asyncio.CancelledError("the workflow's main task was cancelled")
        exc = self._main.exception()
        return (None, exc) if exc is not None else (self._main.result(), None)

    def close(self) -> None:
        self._closed = True  # calls collected from here on belong to a run that stopped
        self._loop.abandon()

    def _run(self) -> None:
        self._loop.run_until_quiescent()

    # -- the runtime seam, for workflow code -------------------------------------------------

    @property
    def is_replaying(self) -> bool:
        return self.replaying

    def now(self) -> datetime:
        if self._time_text is not None:
            return self.time_now()
        return self._now

    def random(self) -> _random.Random:
        found = self._random
        if found is None:
            found = self._random = _random.Random(self._seed)
        return found

    @unwatched
    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self.random().getrandbits(128), version=4)

    @unwatched
    def info(self) -> WorkflowInfo:
        return WorkflowInfo(self.run_id, self.definition.name, self._start_time)

    def call_activity(
        self, definition: ActivityDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        # Not `unwatched`: its one caller, the activity's wrapper, already stepped out of the
        # guard's hook (a frame less per call).
        encoded: _Encoded | Exception | None = None
        replayer = self.replayer
        # Whether the caller awaits the call the moment it returns (`_awaited_calls`); the
        # caller of the activity's wrapper is 2 up.
        caller = sys._getframe(2)
        code = caller.f_code
        awaited = _AWAITED.get(id(code))
        if awaited is None:
            awaited = _awaited_in(code)
        at_once = caller.f_lasti in awaited
        if at_once and replayer is not None and not self._commands:
            # Replay's fastest path: the call resolves from the history here and now. The
            # arguments are compared with the recorded ones as values: plain ones sure to
            # encode within the limit are not encoded at all (`replayed_arguments`; should
            # the ordinary path run after all, it encodes them as a live call does).
            value = definition.signature.replayed_arguments(
                args, kwargs, definition.options.max_payload or self.max_payload
            )
            if value is None:
                try:
                    encoded = self._encode_call(definition, args, kwargs)
                except Exception as exc:  # raised below, once the call's future took its key
                    encoded = exc
                else:
                    arguments, data, values = encoded
                    # The recorded input is compared as decoded; plain arguments are what
                    # they decode to (`_encode_call` gave them as the values).
                    value = arguments if values is arguments else loads(data)
            if value is not None:
                done = self._replayed_call(definition, replayer, value)
                if done is not None:
                    return done
        future: WorkflowFuture[Any] = WorkflowFuture(loop=self._loop)
        if at_once and replayer is None:
            # Live, and awaited by the caller's next instruction: the future, bare. The
            # `WorkflowCall` around it would learn whether anyone awaits the call (and where it
            # was made, to say so if not) and settle it at once on replay: neither applies.
            # (What bytecode cannot tell: a C function called there, such as
            # ``functools.reduce`` over ``map(fetch, ...)``, that calls activities and keeps
            # one. The others go unreported, live and on replay alike, so that both still take
            # the same course.) The future took its key already: later hashes stay the same.
            self._schedule_call(definition, args, kwargs, future, None)
            return future  # type: ignore[return-value]  # awaited at once: no one sees its type
        # A call awaited at once is awaited, live and on replay alike (both ask the same
        # bytecode): only one kept for later can be dropped unawaited.
        dropped = None
        if not at_once:
            filename, line = _call_site()
            # A partial, not a closure: no frame to make it, and two objects instead of five.
            dropped = functools.partial(self._never_awaited, definition.name, filename, line)
        command = self._schedule_call(definition, args, kwargs, future, encoded)
        if command is None or replayer is None:
            return WorkflowCall(future, hash(future), dropped)
        # A partial, not a closure: no frame of its own for the guard's hook to see.
        settle = functools.partial(self._settle_at_once, command, future)
        return WorkflowCall(future, future._key, dropped, settle)

    def _replayed_call(
        self, definition: ActivityDefinition, replayer: Replayer, value: dict[str, Any]
    ) -> Coroutine[Any, Any, Any] | None:
        """Replay's fast path for a call awaited right where it is made (`_awaited_calls`),
        its arguments ``value``: its recorded result, as a done future, if the history's next
        event is this call's completion and the history recorded this very call; else None
        (the ordinary path).

        It is `_settle_at_once` moved to the call itself, with the same conditions (nothing
        else could run first), and without the objects the ordinary path makes to find out
        later whether the call is awaited: that is known from the caller's code here.
        """
        loop = self._loop
        # `_nothing_could_run_first`, inline.
        if loop._ready or self._conditions or self._handler_error is not None:
            return None
        task = current_task(loop)
        if task is None or task.cancelling():
            return None
        seq = self._seq + 1
        event = replayer.completion_at_once(seq, definition.name, value)
        if event is None:
            return None
        signature = definition.signature
        result = event.result
        # `decode_value`'s own test first: a plain result (most are) costs no further frame,
        # tested inline by the types `unchanged_result` found (it is asked itself the first
        # time, and of a float, which must be finite). Inside the try: it reads the type
        # hints, which raise if they no longer resolve.
        try:
            kind = result.__class__
            if (
                kind is float or kind not in signature.result_types
            ) and not signature.unchanged_result(result):
                result = signature.decode_value(result)
        except Exception:
            replayer.put_back()
            return None  # the ordinary path says why, outside the workflow code
        self._seq = seq
        # The time is the event's, parsed only if read (`time_now`).
        self._time_text = event.ts
        self._history_length = event.id
        loop._now = None  # asked of `time_now` when read
        # The ordinary path's future takes a key: every later task and future keeps its hash.
        next(loop._keys)
        done: asyncio.Future[Any] = asyncio.Future(loop=loop)
        done.set_result(result)
        return done  # type: ignore[return-value]  # awaited at once: no one sees its type

    def _schedule_call(
        self,
        definition: ActivityDefinition,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: WorkflowFuture[Any],
        encoded: _Encoded | Exception | None,
    ) -> ScheduleActivity | None:
        """Schedule the call whose outcome ``future`` is to carry, and return its command;
        None if its input is refused (``future`` then holds why, and nothing is recorded).
        ``encoded``: `_encode_call`'s, or what it raised, if it ran already."""
        try:
            if isinstance(encoded, Exception):
                raise encoded
            command = self._schedule(definition, args, kwargs, encoded)
        except WfrunError as exc:  # bad input: the call fails before anything is recorded
            future.set_exception(exc.with_traceback(None))
            return None
        # A partial, not a closure: no frame of its own for the guard's hook to see.
        abandoned = functools.partial(self._activity_abandoned, command.seq)
        self._activities[command.seq] = (future, command, abandoned)
        # In the run's own context, not a copy of the caller's (one per call, to keep until
        # the call ends): wfrun's callback reads no context variable.
        future.add_done_callback(abandoned, context=self._context)
        self._commands.append(command)
        return command

    @unwatched
    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        future: WorkflowFuture[None] = WorkflowFuture(loop=self._loop)
        if seconds <= 0:
            future.set_result(None)
        else:
            handle = self._loop.call_later(seconds, _resolve, future)
            future.add_done_callback(lambda f: handle.cancel() if f.cancelled() else None)
        return WorkflowCall(future, hash(future))

    @unwatched
    def wait_condition(
        self, predicate: Callable[[], bool], timeout: float | None
    ) -> Coroutine[Any, Any, None]:
        future: WorkflowFuture[None] = WorkflowFuture(loop=self._loop)
        self._conditions.append((predicate, future))
        if timeout is not None:
            handle = self._loop.call_later(timeout, _time_out, future, timeout)
            future.add_done_callback(lambda f: handle.cancel())
        return WorkflowCall(future, hash(future))

    @unwatched
    def patched(self, patch_id: str) -> bool:
        if patch_id not in self._patches:
            recorded = self._recorded(self._seq + 1)
            if recorded is None or (
                isinstance(recorded, MarkerRecorded)
                and recorded.name == "patch"
                and recorded.value == patch_id
            ):
                self._seq += 1
                self._commands.append(RecordMarker(self._seq, "patch", patch_id))
                self._patches[patch_id] = True
            else:  # replaying a run recorded before the patch: keep to the old code
                self._patches[patch_id] = False
        return self._patches[patch_id]

    @unwatched
    def execute_child(
        self, definition: WorkflowDefinition, params: Any, execution_id: str | None
    ) -> Coroutine[Any, Any, Any]:
        future: WorkflowFuture[Any] = WorkflowFuture(loop=self._loop)
        try:
            data = definition.encode_input(params)
            check_size(data, limit=self.max_payload, workflow=definition.name, side="input")
            seq = self._seq + 1
            # Derived from this run's id: unique, stable on replay, and readable as kin.
            run_id = execution_id or f"{self.run_id[:100]}-child-{seq}"
            if not is_run_id(run_id):
                raise InputError(f"execution_id {run_id!r} is no valid run id")
        except WfrunError as exc:  # bad input: the call fails before anything is recorded
            future.set_exception(exc.with_traceback(None))
            return WorkflowCall(future, hash(future))
        self._seq = seq
        command = StartChild(seq, definition, data, run_id, target_of(definition.cls, by_file=True))
        self._children[seq] = (future, command)
        self._child_commands[seq] = command
        future.add_done_callback(lambda f: self._child_abandoned(seq, f))
        self._commands.append(command)
        return WorkflowCall(future, hash(future))

    @unwatched
    def continue_as_new(self, params: Any) -> NoReturn:
        data = self.definition.encode_input(params)
        check_size(data, limit=self.max_payload, workflow=self.definition.name, side="input")
        raise ContinueAsNewError(data)

    def should_continue_as_new(self) -> bool:
        limit = self._continue_as_new_at
        return limit is not None and self._history_length >= limit

    @unwatched
    def wait_for_input(
        self, schema: type[BaseModel], label: str, timeout: float | None
    ) -> Coroutine[Any, Any, Any]:
        future: WorkflowFuture[Any] = WorkflowFuture(loop=self._loop)
        if self.pending_input(label) is not None:
            raise UsageError(
                f"the workflow already waits for an input labelled {label!r}: give each "
                "wait_for_input its own label"
            )
        self._inputs[label] = (schema, future)
        if timeout is not None:
            handle = self._loop.call_later(timeout, _time_out, future, timeout)
            future.add_done_callback(lambda f: handle.cancel())
        return WorkflowCall(future, hash(future))

    # -- the loop's owner --------------------------------------------------------------------

    @unwatched
    def start_timer(self, handle: WorkflowTimerHandle) -> None:
        duration = max(handle.when() - self._loop.time(), 0.0)
        if duration > LIMIT:  # the workflow code that asked for it gets this error
            raise ValueError(
                f"a timer of {duration:g}s is longer than a history records (about 317 years)"
            )
        self._seq += 1
        handle.seq = self._seq
        self._timers[handle.seq] = handle
        self._commands.append(
            StartTimer(handle.seq, duration, self.time_now() + timedelta(seconds=duration))
        )

    def time_now(self) -> datetime:
        """The workflow's time (the loop's owner is asked it once the loop forgot its own)."""
        text = self._time_text
        if text is not None:
            self._time_text = None
            self._now = _fromisoformat(text)
        return self._now

    @unwatched
    def timer_cancelled(self, handle: WorkflowTimerHandle) -> None:
        if self._timers.pop(handle.seq, None) is not None:
            self._commands.append(CancelTimer(handle.seq))

    def check_conditions(self) -> bool:  # runs at every quiescence: not worth unwatching
        if not self._conditions:  # most steps wait on none: no copy (a call the guard sees)
            return False
        met = False
        for predicate, future in list(self._conditions):
            if future.done():
                self._conditions.remove((predicate, future))
                continue
            try:
                satisfied = predicate()
            except Exception as exc:  # the waiting workflow code gets it, as if it had asked
                satisfied = True
                future.set_exception(exc)
            if satisfied:
                self._conditions.remove((predicate, future))
                if not future.done():
                    future.set_result(None)
                met = True
        return met

    def guard(self) -> Guard:
        self._guard.paused = self.replaying and not self.watch_replay
        return self._guard

    # -- internals ---------------------------------------------------------------------------

    def _encode_call(
        self, definition: ActivityDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _Encoded:
        """A call's arguments by name, their encoding (checked against the size limit), and
        the values the activity is given: the encoding decoded under today's annotations."""
        signature = definition.signature
        # Plain values the annotations take as they are need no decoding: they are what the
        # encoding decodes to. Passed by position (most calls), bound and known so at once.
        arguments = signature.plain_arguments(args, kwargs)
        plain = arguments is not None
        if arguments is None:
            arguments = signature.bind(args, kwargs)
        data = encode_arguments(arguments, subject=signature.owner)
        limit = definition.options.max_payload or self.max_payload
        if len(data) > limit:  # the test first: a call with keywords costs every step
            check_size(data, limit=limit, activity=definition.name, side="input")
        if plain or signature.unchanged_input(arguments):
            return arguments, data, arguments
        return arguments, data, signature.decode_input(data)

    def _schedule(
        self,
        definition: ActivityDefinition,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        encoded: _Encoded | None = None,
    ) -> ScheduleActivity:
        """``encoded``: `_encode_call`'s, if it was made already (it may run user code)."""
        _, data, values = encoded or self._encode_call(definition, args, kwargs)
        self._seq += 1
        return ScheduleActivity(self._seq, definition, data, values)

    def _never_awaited(self, activity: str, filename: str, line: int) -> None:
        """What a call nobody awaited reports when it is collected: the run stops BLOCKED."""
        if self._closed or self._handler_error is not None:
            return  # the run already stopped, or is stopping for an earlier error
        where = f"{filename}:{line}"
        self._handler_error = NotAwaitedError(
            f"activity {activity!r} was called at {where} but never awaited: add `await` "
            f"(`result = await {activity}(...)`); a call nobody awaits would be a step "
            "silently dropped",
            activity=activity,
            where=where,
        )

    @unwatched  # wfrun's own work, run inside the step: not the guard's to see
    def _settle_at_once(self, command: ScheduleActivity, future: WorkflowFuture[Any]) -> None:
        """Replay's fast path: resolve an awaited activity now from its recorded outcome.

        Taken only where it is indistinguishable from the ordinary path, in which the task
        suspends, the loop runs dry, the replay checks the step's commands and delivers the
        next event, and the task resumes with it. That holds when nothing else could run
        first: no other callback ready, no condition to look at, no cancellation pending on
        the awaiting task, no error stopping the run, and the next recorded event is this
        very call's completion. Otherwise, or if the commands or the result disagree with the
        history, the ordinary path runs and reports it.
        """
        replayer = self.replayer
        entry = self._activities.get(command.seq)
        if (
            replayer is None
            or future.done()
            or entry is None
            or not self._nothing_could_run_first()
        ):
            return
        loop = self._loop
        event = replayer.outcome_at_once(command.seq, self._commands)
        if event is None:
            return
        try:
            value = self._decode_result(event, command, "activity")
        except NonDeterminismError:
            return  # raised by the ordinary path, outside the workflow code
        replayer.take_outcome()
        self._commands.clear()  # each one checked against the history just now
        self._now = event.time
        self._time_text = None
        self._history_length = event.id
        loop.set_time(self._now.timestamp())
        del self._activities[command.seq]
        # The callback would only ever see a result: dropped so that nothing is left ready.
        future.remove_done_callback(entry[2])
        future.set_result(value)

    def _nothing_could_run_first(self) -> bool:
        """Whether a call awaited now may take its recorded outcome at once (replay's fast
        paths): nothing else is ready to run, no condition is to be looked at, no error stops
        the run, and the awaiting task has no cancellation pending."""
        if self._loop._ready or self._conditions or self._handler_error is not None:
            return False
        task = current_task(self._loop)
        return task is not None and not task.cancelling()

    def _activity_abandoned(self, seq: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled() and self._activities.pop(seq, None) is not None:
            self._commands.append(CancelActivity(seq))

    def _child_abandoned(self, seq: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled() and self._children.pop(seq, None) is not None:
            self._commands.append(CancelChild(seq))

    def _end_child(self, event: ChildWorkflowCompleted | ChildWorkflowFailed) -> None:
        entry = self._children.pop(event.seq, None)
        if entry is None:
            return  # the workflow stopped waiting for it before it ended
        future, command = entry
        if isinstance(event, ChildWorkflowCompleted):
            future.set_result(self._decode_result(event, command, "child"))
            return
        failure = Failure.from_record(event.error)
        error = WorkflowFailedError(
            f"child run {event.run_id} of workflow {command.definition.name!r} ended "
            f"{event.status}: {failure.describe()}",
            run_id=event.run_id,
        )
        error.__cause__ = failure.rebuild()
        future.set_exception(error)

    def _deliver_signal(self, event: SignalReceived) -> None:
        waiting = self._inputs.get(event.name)
        if waiting is not None and not waiting[1].done():
            schema, future = waiting
            try:
                future.set_result(schema.model_validate(event.input))
            except ValueError as exc:  # refused when sent, so the schema changed since
                future.set_exception(InputError(f"input {event.name!r}: {exc}"))
            return
        self._run_handler("signal", event.name, event.input, self._signal_done)

    def _signal_done(self, value: Any, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            self._handler_error = exc  # it ends the run, as the entrypoint's own error would

    def _deliver_update(self, event: UpdateAccepted) -> None:
        message = event.message

        def done(value: Any, exc: BaseException | None) -> None:
            self.update_results.append((message, value, exc))  # a failure fails the update only

        self._run_handler("update", event.name, event.input, done)

    def _run_handler(
        self,
        kind: str,
        name: str,
        input_value: Any,
        done: Callable[[Any, BaseException | None], None],
    ) -> None:
        """Run a message's handler on the workflow object, on the workflow's loop; ``done``
        gets what it returned or raised."""
        handler = self.definition.handler(kind, name)
        args, kwargs = _arguments(handler, raw(input_value))
        method = handler.fn.__get__(self._object)
        if handler.is_async:
            task = self._loop.create_task(method(*args, **kwargs), context=self._context)
            task.add_done_callback(lambda finished: done(*_task_outcome(finished)))
            return

        def call() -> None:
            try:
                value = method(*args, **kwargs)
            except Exception as exc:
                done(None, exc)
            else:
                done(value, None)

        self._loop.call_soon(call, context=self._context)

    def validate_update(self, name: str, input_data: bytes) -> BaseException | None:
        """Run an update's validator against the run's state now; the error if it refuses."""
        handler = self.definition.handler("update", name)
        if handler.validator is None:
            return None
        args, kwargs = _arguments(handler, input_data)
        try:
            self._context.run(handler.validator.__get__(self._object), *args, **kwargs)
        except Exception as exc:
            return exc
        return None

    def take_update_results(self) -> list[tuple[str, Any, BaseException | None]]:
        results, self.update_results = self.update_results, []
        return results

    def query(self, name: str, input_data: bytes) -> Any:
        """Call the query handler ``name`` on the run's state (after a replay); nothing runs."""
        handler = self.definition.handler("query", name)
        args, kwargs = _arguments(handler, input_data)
        method = handler.fn.__get__(self._object)
        return self._context.run(method, *args, **kwargs)

    def _complete_activity(self, event: ActivityCompleted, decoded: Any) -> None:
        entry = self._activities.pop(event.seq, None)
        if entry is None:
            return  # cancelled by the workflow before this outcome arrived
        future, command, abandoned = entry
        if decoded is _UNDECODED:
            decoded = self._decode_result(event, command, "activity")
        # The callback would only ever see a result: dropped, so that the loop has one handle
        # less to make and run (each step's), and the same live as on replay.
        future.remove_done_callback(abandoned)
        future.set_result(decoded)

    def _decode_result(
        self,
        event: ActivityCompleted | ChildWorkflowCompleted,
        command: ScheduleActivity | StartChild,
        what: str,
    ) -> Any:
        """A recorded result, typed by today's annotation; if it no longer fits, the code
        changed under the run."""
        signature = command.definition.signature
        try:
            return signature.decode_value(event.result)
        except Exception as exc:
            try:
                requested = str(signature.result_annotation)
            except Exception:  # its names no longer resolve: `exc` says which
                requested = "an annotation that cannot be read"
            raise NonDeterminismError(
                f"run {self.run_id}: the result recorded at event {event.id} for "
                f"{command.describe()} no longer matches the {what}'s return annotation "
                f"({exc}). The code changed since this run started: revert the change to "
                "finish this run, or start a new run.",
                run_id=self.run_id,
                event_id=event.id,
                recorded=abbreviate(event.result),
                requested=requested,
            ) from None

    def _fail_activity(self, event: ActivityFailed | ActivityTimedOut) -> None:
        entry = self._activities.pop(event.seq, None)
        if entry is None:
            return
        future, command, abandoned = entry
        future.remove_done_callback(abandoned)  # it would only see an exception (see above)
        if isinstance(event, ActivityTimedOut):
            message = event.message or f"ran past its {event.timeout} timeout of {event.limit:g}s"
            failure = Failure("TimeoutError", message)
        else:
            failure = Failure.from_record(event.error)
            too_large = failure.rebuild_payload_error()
            if too_large is not None:
                future.set_exception(too_large)
                return
        cause = failure.rebuild()
        policy = command.definition.options.retry_policy
        exhausted = not policy.attempts_left(event.attempt) and not failure.non_retryable
        retry_state = "MAXIMUM_ATTEMPTS_REACHED" if exhausted else "NON_RETRYABLE_FAILURE"
        if isinstance(event, ActivityTimedOut) and event.timeout == "schedule_to_close":
            retry_state = "TIMEOUT"  # Temporal's name: the call's own time ran out
        error = ActivityError(
            f"activity {command.definition.name!r} failed after {event.attempt} "
            f"attempt{'s' if event.attempt != 1 else ''}: {failure.describe()}",
            activity=command.definition.name,
            activity_id=command.seq,
            attempts=event.attempt,
            retry_state=retry_state,
        )
        error.__cause__ = cause
        future.set_exception(error)

    def _unhandled(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(
            exc, ApplicationError | ActivityError | WorkflowFailedError | asyncio.CancelledError
        ):
            return  # an outcome nobody awaited, e.g. the loser of a race
        message = context.get("message", "unhandled error in workflow code")
        logging.getLogger("wfrun.workflow").warning("%s: %r", message, exc)


#: Told what a message's handler returned, or what it raised.
_Done = Callable[[Any, BaseException | None], None]


def _arguments(handler: HandlerDefinition, data: bytes) -> tuple[list[Any], dict[str, Any]]:
    return handler.signature.call_arguments(handler.signature.decode_input(data))


def _task_outcome(task: asyncio.Task[Any]) -> tuple[Any, BaseException | None]:
    if task.cancelled():
        return None, asyncio.CancelledError("cancelled")
    exc = task.exception()
    return (None, exc) if exc is not None else (task.result(), None)


#: How far below `_call_site` the caller of the activity's wrapper runs: past
#: `call_activity` and the wrapper.
_ACTIVITY_CALL_DEPTH: Final = 3
#: wfrun's own files, as their code objects name them (the folder of the package, unresolved).
_PACKAGE: Final = str(Path(__file__).parent.parent) + os.sep


def _call_site() -> tuple[str, int]:
    """The file and line of the workflow code that called into wfrun (wfrun's frames skipped).

    Called by `WorkflowInstance.call_activity` only, which only the activity's own wrapper
    (``call`` in `wfrun.activity`) calls: the look starts at that wrapper's caller, the
    frames in between being wfrun's for certain (and wfrun's frames are still skipped from
    there). Each frame looked at is a frame object made on the spot (Python 3.11+): walking
    them all cost about a microsecond and a half of every activity call.
    """
    frame: FrameType | None = sys._getframe(_ACTIVITY_CALL_DEPTH)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    if frame is None:  # pragma: no cover - wfrun is always called from somewhere
        return "<unknown>", 0
    return frame.f_code.co_filename, frame.f_lineno


_fromisoformat: Final = datetime.fromisoformat
#: Per live code object, by id (hashing a code object hashes its bytecode), where it awaits a
#: call the moment the call returns (`_awaited_calls`). An entry goes when its code does
#: (`_awaited_in`): no id is reused while its entry is there, and a process that reloads
#: modules, or compiles code, keeps no entry for the code it dropped.
_AWAITED: dict[int, frozenset[int]] = {}
#: The weak references that drop `_AWAITED`'s entries with their code objects.
_AWAITED_CODE: dict[int, weakref.ref[CodeType]] = {}


def _awaited_in(code: CodeType) -> frozenset[int]:
    """`_awaited_calls` of ``code``, remembered in `_AWAITED` for as long as ``code`` lives."""
    key = id(code)
    found = _AWAITED[key] = _awaited_calls(code)
    # The callback runs as the code object is freed, before its id can be another's.
    _AWAITED_CODE[key] = weakref.ref(code, functools.partial(_forget_code, key))
    return found


def _forget_code(key: int, gone: weakref.ref[CodeType]) -> None:
    if _AWAITED_CODE.get(key) is gone:
        del _AWAITED_CODE[key]
        _AWAITED.pop(key, None)


def _awaited_calls(code: CodeType) -> frozenset[int]:
    """The values ``f_lasti`` of a frame running ``code`` has during a call whose result the
    very next instruction awaits (``await fetch(x)``): a ``CALL`` followed by
    ``GET_AWAITABLE``. Nothing runs between the two, so such a call's result is awaited
    before anything else can happen.

    Only ``CALL`` itself: ``CALL_FUNCTION_EX`` (``await f(*args)``) may call activities
    while it unpacks an iterator, before it calls what is awaited.
    """
    found: set[int] = set()
    instructions = list(dis.get_instructions(code))
    for instruction, following in itertools.pairwise(instructions):
        if instruction.opname == "CALL" and following.opname == "GET_AWAITABLE":
            # 3.11 reports the last of the call's inline cache entries; later ones may
            # report the instruction itself.
            found.update((instruction.offset, following.offset - 2))
    return frozenset(found)


#: An activity call awaited: its future, its command, and the future's `_activity_abandoned`.
_Awaited = tuple[WorkflowFuture[Any], ScheduleActivity, Callable[[asyncio.Future[Any]], None]]
#: A call's arguments by name, their encoding, and the values the activity is given.
_Encoded = tuple[dict[str, Any], bytes, dict[str, Any]]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _time_out(future: asyncio.Future[None], timeout: float) -> None:
    if not future.done():
        future.set_exception(TimeoutError(f"condition not met within {timeout:g}s"))
