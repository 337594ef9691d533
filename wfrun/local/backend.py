"""The local backend: runs kept as history files under a wfrun home, carried out in this process.

``wfrun start`` and `execute_workflow` both come down to `LocalBackend.start`; ``wfrun
resume`` and `resume_workflow` to `LocalBackend.resume`. Each run lives in its own history file
(`wfrun.local.store`), is carried out by a `wfrun.local.engine.RunEngine`, and many runs may be
in flight in one process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import orjson

from .. import entropy, settings
from .._version import __version__
from ..clock import Clock, SystemClock
from ..definitions import WorkflowDefinition
from ..errors import (
    Failure,
    HistoryCorruptError,
    InputError,
    RunLockedError,
    UsageError,
    WfrunError,
)
from ..events import (
    CHECKSUMMED,
    FORMAT_VERSION,
    TERMINAL,
    CancelRequested,
    Encoded,
    Event,
    Observer,
    SignalReceived,
    UpdateAccepted,
    UpdateCompleted,
    WorkflowContinuedAsNew,
    WorkflowStarted,
    format_ts,
)
from ..loader import load_recorded
from ..payload import abbreviate, check_size, encode, loads, plain, raw
from ..runs import (
    EventStream,
    InputPrompt,
    ReplayResult,
    RunHistory,
    RunInfo,
    RunOutcome,
    RunStatus,
    SignalSent,
    UpdateResult,
    carrier_of,
    new_run_id,
)
from . import syncs
from .commands import StartChild
from .history import History, parse_line
from .inbox import Inbox
from .store import HistoryWriter, RunStore, validate_run_id
from .stream import HistoryStream

if TYPE_CHECKING:
    from .engine import RunEngine

# The engine (and the workflow instance, attempts, guard under it) is imported where a run is
# carried out or replayed: `list`, `history` and `show` read files and need none of it.

#: How often `LocalBackend.follow` looks for new lines (seconds).
FOLLOW_INTERVAL = 0.2
#: How long a signal sent to a live run waits to see it recorded (it is durable anyway).
HAND_OVER: Final = 10.0
HAND_OVER_POLL: Final = 0.05


@dataclass(frozen=True, slots=True)
class _NewRun:
    """What a new run's first event records."""

    definition: WorkflowDefinition
    input: bytes
    target: str
    run_id: str
    max_payload: int
    parent: str | None = None
    continued_from: str | None = None


class LocalBackend:
    """Runs under one wfrun home: ``<home>/runs/<run-id>.jsonl``, one file per run."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        settings.check()  # a bad environment variable stops here, before anything runs
        self.store = RunStore(home)

    @property
    def location(self) -> str:
        return str(self.store.home)

    def validate_run_id(self, run_id: str) -> str:
        return validate_run_id(run_id)

    # -- carrying runs out -------------------------------------------------------------------

    async def start(
        self,
        definition: WorkflowDefinition,
        input_data: bytes,
        *,
        target: str,
        run_id: str | None = None,
        max_payload: int | None = None,
        clock: Clock | None = None,
        observers: Iterable[Observer] = (),
        max_wait: float | None = None,
        ask: InputPrompt | None = None,
    ) -> RunOutcome:
        clock = clock or SystemClock()
        limit = max_payload or settings.max_payload()
        check_size(input_data, limit=limit, workflow=definition.name, side="input")
        given = run_id is not None
        run_id = (
            validate_run_id(run_id) if run_id is not None else new_run_id(definition.name, clock)
        )
        run = _NewRun(definition, input_data, target, run_id, limit)
        outcome = await self._start_chain(
            run, given=given, clock=clock, observers=observers, max_wait=max_wait, ask=ask
        )
        self._tell_parent(outcome, None)
        return outcome

    async def resume(
        self,
        run_id: str,
        *,
        definition: WorkflowDefinition | None = None,
        clock: Clock | None = None,
        observers: Iterable[Observer] = (),
        on_history: Callable[[RunHistory], None] | None = None,
        max_wait: float | None = None,
        ask: InputPrompt | None = None,
    ) -> RunOutcome:
        clock = clock or SystemClock()
        parents: list[str | None] = []

        def opened(history: RunHistory) -> None:
            parents.append(history.started.parent)
            if on_history is not None:
                on_history(history)

        outcome = await self._resume_one(
            run_id,
            definition=definition,
            clock=clock,
            observers=observers,
            on_history=opened,
            max_wait=max_wait,
            ask=ask,
        )
        outcome = await self._follow_chain(outcome, clock, max_wait=max_wait, ask=ask)
        self._tell_parent(outcome, parents[0] if parents else None)
        return outcome

    async def run_child(
        self,
        command: StartChild,
        *,
        parent: str,
        clock: Clock,
        max_wait: float | None,
        ask: InputPrompt | None,
    ) -> RunOutcome:
        run = _NewRun(
            command.definition,
            command.input,
            command.target,
            command.run_id,
            settings.max_payload(),
            parent=parent,
        )
        return await self._start_chain(run, given=True, clock=clock, max_wait=max_wait, ask=ask)

    def child_can_go_on(self, run_id: str, now: datetime) -> bool:
        try:
            info = self.store.info(run_id)
        except WfrunError:  # a damaged child stays so: the run waits until someone looks
            return False
        # Ended meanwhile, carried on by another process: its parent records how it ended.
        return info.status.ended or info.can_go_on(format_ts(now))

    def cancel_child(self, run_id: str, message_id: str, reason: str, now: datetime) -> None:
        data = orjson.dumps({"reason": reason})
        last = self._last_of_chain(run_id)
        self._inbox(last).post("cancel", "cancel", data, format_ts(now), message_id=message_id)

    def _last_of_chain(self, run_id: str) -> str:
        """The run that carries ``run_id``'s chain on now: it, or the run it continued as
        (the next one may not exist yet: its inbox waits for it)."""
        seen = {run_id}
        while True:
            try:
                ended = self.store.read(run_id).terminal
            except WfrunError:
                return run_id
            if not isinstance(ended, WorkflowContinuedAsNew) or ended.run_id in seen:
                return run_id
            run_id = ended.run_id
            seen.add(run_id)

    async def _start_chain(
        self,
        run: _NewRun,
        *,
        given: bool,
        clock: Clock,
        observers: Iterable[Observer] = (),
        max_wait: float | None,
        ask: InputPrompt | None,
    ) -> RunOutcome:
        try:
            outcome = await self._start_one(run, clock, observers, max_wait, ask)
        except FileExistsError:
            if not given:  # pragma: no cover - a generated id is unique
                raise
            # Started before (an idempotent start, or a child whose parent was resumed).
            outcome = await self._resume_one(
                run.run_id,
                definition=run.definition,
                clock=clock,
                observers=observers,
                max_wait=max_wait,
                on_history=lambda history: _same_run(
                    history, run.definition, run.input, run.parent
                ),
                ask=ask,
            )
        return await self._follow_chain(outcome, clock, max_wait=max_wait, ask=ask)

    async def _follow_chain(
        self,
        outcome: RunOutcome,
        clock: Clock,
        *,
        max_wait: float | None,
        ask: InputPrompt | None,
    ) -> RunOutcome:
        """A run that continued as new goes on as its successor, to the end of the chain."""
        chain: list[str] = []
        while outcome.status is RunStatus.CONTINUED_AS_NEW:
            before = outcome.run_id
            history = self.store.read(before)
            ended = history.terminal
            assert isinstance(ended, WorkflowContinuedAsNew)
            started = history.started
            chain.append(before)
            run = _NewRun(
                load_recorded(started),
                raw(ended.input),
                started.target,
                ended.run_id,
                started.max_payload,
                parent=started.parent,
                continued_from=before,
            )
            try:
                outcome = await self._start_one(run, clock, (), max_wait, ask)
            except FileExistsError:  # created before a crash: carry it on, if it is that run
                outcome = await self._resume_one(
                    ended.run_id,
                    clock=clock,
                    max_wait=max_wait,
                    ask=ask,
                    on_history=partial(_continues, previous=before),
                )
        return dataclasses.replace(outcome, chain=tuple(chain)) if chain else outcome

    def _tell_parent(self, outcome: RunOutcome, parent: str | None) -> None:
        """A child that ended away from its parent's process wakes its parent up: a message
        in the parent's inbox is what ``resume --all`` looks for."""
        if parent is None or not outcome.status.ended:
            return
        with contextlib.suppress(WfrunError):  # the parent is gone: nobody to tell
            if not self.store.info(parent).status.ended:
                now = format_ts(SystemClock().now())
                self._inbox(parent).post("child", outcome.run_id, b"{}", now)

    async def _start_one(
        self,
        run: _NewRun,
        clock: Clock,
        observers: Iterable[Observer],
        max_wait: float | None,
        ask: InputPrompt | None,
    ) -> RunOutcome:
        definition = run.definition
        fields = {
            "format": FORMAT_VERSION,
            "run_id": run.run_id,
            "workflow": definition.name,
            "target": run.target,
            "input": Encoded(run.input),
            "wfrun_version": __version__,
            "seed": entropy.randbits(63),
            "cwd": os.getcwd(),
            "max_payload": run.max_payload,
            "execution_timeout": (
                definition.execution_timeout.total_seconds()
                if definition.execution_timeout
                else None
            ),
            "parent": run.parent,
            "continued_from": run.continued_from,
            "continue_as_new_at": settings.continue_as_new_at(),
        }
        with syncs.live_run():
            writer, started = await self._create(fields, clock)
            return await self._start_created(
                writer, started, definition, clock, observers, max_wait, ask
            )

    async def _create(
        self, fields: dict[str, Any], clock: Clock
    ) -> tuple[HistoryWriter, WorkflowStarted]:
        """`RunStore.create`, its fsyncs aside while other runs are live (it fsyncs twice)."""
        if not syncs.crowded():
            # Runs started together (`asyncio.gather`) begin one after another: one turn of the
            # loop lets the others say they are live first. Else a run whose workflow never
            # waits (no step) would be created, run and ended alone, fsyncs inline, before the
            # next began, and so would every run of such a crowd, one after another.
            await asyncio.sleep(0)
        if not syncs.crowded():
            return self.store.create(fields, clock)
        return await self.store.create_aside(fields, clock)

    async def _start_created(
        self,
        writer: HistoryWriter,
        started: WorkflowStarted,
        definition: WorkflowDefinition,
        clock: Clock,
        observers: Iterable[Observer],
        max_wait: float | None,
        ask: InputPrompt | None,
    ) -> RunOutcome:
        engine: RunEngine | None = None
        try:
            writer.observers.extend(observers)
            for observer in writer.observers:  # they were not there when the first event was
                observer(started)
            history = History(path=writer.path, events=[started])
            engine = self._engine(definition, history, writer, clock, max_wait, ask)
            return await engine.run()
        finally:
            writer.close(after=engine.threads if engine else ())

    async def _resume_one(
        self,
        run_id: str,
        *,
        definition: WorkflowDefinition | None = None,
        clock: Clock,
        observers: Iterable[Observer] = (),
        on_history: Callable[[RunHistory], None] | None = None,
        max_wait: float | None = None,
        ask: InputPrompt | None = None,
    ) -> RunOutcome:
        with syncs.live_run():
            writer, history = self.store.open_for_append(run_id, clock)
            return await self._resume_opened(
                writer, history, definition, clock, observers, on_history, max_wait, ask
            )

    async def _resume_opened(
        self,
        writer: HistoryWriter,
        history: History,
        definition: WorkflowDefinition | None,
        clock: Clock,
        observers: Iterable[Observer],
        on_history: Callable[[RunHistory], None] | None,
        max_wait: float | None,
        ask: InputPrompt | None,
    ) -> RunOutcome:
        run_id = history.started.run_id
        engine: RunEngine | None = None
        try:
            if on_history is not None:
                on_history(history)
            if history.terminal is not None:
                return RunOutcome.from_terminal(run_id, history.terminal)
            definition = definition or load_recorded(history.started)
            writer.observers.extend(observers)
            engine = self._engine(definition, history, writer, clock, max_wait, ask)
            return await engine.run()
        finally:
            writer.close(after=engine.threads if engine else ())

    def _engine(
        self,
        definition: WorkflowDefinition,
        history: History,
        writer: HistoryWriter,
        clock: Clock,
        max_wait: float | None,
        ask: InputPrompt | None,
    ) -> RunEngine:
        run_id = history.started.run_id
        return _engine_class()(
            definition,
            history,
            writer,
            clock,
            max_wait=max_wait,
            inbox=self._inbox(run_id),
            children=self,
            ask=ask,
        )

    # -- messages ----------------------------------------------------------------------------

    async def signal(
        self,
        run_id: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        resume: bool = True,
        clock: Clock | None = None,
        max_wait: float | None = None,
        observers: Iterable[Observer] = (),
    ) -> SignalSent:
        history = self._open_run(run_id, "no signal can reach it any more")
        definition = load_recorded(history.started)
        data = _signal_input(definition, history, name, payload)
        return await self._deliver(
            run_id, "signal", name, data, definition, resume, clock, max_wait, observers
        )

    async def cancel(
        self,
        run_id: str,
        reason: str | None = None,
        *,
        resume: bool = True,
        clock: Clock | None = None,
        max_wait: float | None = None,
        observers: Iterable[Observer] = (),
    ) -> SignalSent:
        history = self._open_run(run_id, "there is nothing left to cancel")
        definition = load_recorded(history.started)
        data = orjson.dumps({"reason": reason})
        return await self._deliver(
            run_id, "cancel", "cancel", data, definition, resume, clock, max_wait, observers
        )

    async def update(
        self,
        run_id: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        max_wait: float | None = None,
    ) -> UpdateResult:
        history = self._open_run(run_id, "no update can reach it any more")
        definition = load_recorded(history.started)
        data = definition.handler("update", name).encode_input(payload)
        sent = await self._deliver(
            run_id, "update", name, data, definition, True, clock, max_wait, ()
        )
        for _ in range(int(HAND_OVER / HAND_OVER_POLL)):
            answer = _answer(self.store.read(run_id), sent.message)
            if answer is not None:
                return UpdateResult(
                    run_id,
                    result=plain(answer.result),
                    error=Failure.from_record(answer.error) if answer.error else None,
                    rejected=answer.rejected,
                    outcome=sent.outcome,
                )
            if not self.store.is_locked(run_id):  # nobody runs it: carry it on here
                sent = await self._hand_over(run_id, sent.message, definition, clock, max_wait, ())
            await asyncio.sleep(HAND_OVER_POLL)
        return UpdateResult(run_id, outcome=sent.outcome, pending=True)

    def _open_run(self, run_id: str, too_late: str) -> RunHistory:
        history = self.store.read(run_id)
        ended = history.terminal
        if isinstance(ended, WorkflowContinuedAsNew):
            raise UsageError(
                f"run {run_id} continued as new as run {ended.run_id}: send it to the last run "
                "of the chain (`wfrun show` names each run's successor)"
            )
        if ended is not None:
            raise UsageError(f"run {run_id} has ended ({RunStatus.after(ended)}): {too_late}")
        return history

    async def _deliver(
        self,
        run_id: str,
        kind: str,
        name: str,
        data: bytes,
        definition: WorkflowDefinition,
        resume: bool,
        clock: Clock | None,
        max_wait: float | None,
        observers: Iterable[Observer],
    ) -> SignalSent:
        """Post a message durably, then see that someone carries it into the history: the live
        process, or this one (which resumes the run), unless ``resume`` is false."""
        now = format_ts((clock or SystemClock()).now())
        message = self._inbox(run_id).post(kind, name, data, now).id
        if not resume:
            return SignalSent(run_id, message, recorded=False)
        return await self._hand_over(run_id, message, definition, clock, max_wait, observers)

    async def _hand_over(
        self,
        run_id: str,
        message: str,
        definition: WorkflowDefinition,
        clock: Clock | None,
        max_wait: float | None,
        observers: Iterable[Observer],
    ) -> SignalSent:
        """See that a posted message reaches the history: taken by the live process, or by
        this one, which resumes the run (or the parent that carries it on)."""
        carrier = self._carrier(run_id)
        if carrier != run_id:
            return await self._hand_over_to_parent(run_id, carrier, message, clock, max_wait)
        taken_before: list[bool] = []

        def opened(history: RunHistory) -> None:
            taken_before.append(_records(history, message))

        for _ in range(int(HAND_OVER / HAND_OVER_POLL)):
            try:
                outcome = await self.resume(
                    run_id,
                    definition=definition,
                    clock=clock,
                    max_wait=max_wait,
                    observers=observers,
                    on_history=opened,
                )
            except RunLockedError:
                if _records(self.store.read(run_id), message):
                    return SignalSent(run_id, message, recorded=True)
                await asyncio.sleep(HAND_OVER_POLL)
                continue
            if taken_before and taken_before[-1]:  # the live run took it, and has let go since
                return SignalSent(run_id, message, recorded=True)
            return SignalSent(run_id, message, recorded=True, outcome=outcome)
        return SignalSent(run_id, message, recorded=_records(self.store.read(run_id), message))

    async def _hand_over_to_parent(
        self, run_id: str, carrier: str, message: str, clock: Clock | None, max_wait: float | None
    ) -> SignalSent:
        """A child's message: its parent carries it on (resumed here if no process runs it)."""
        for _ in range(int(HAND_OVER / HAND_OVER_POLL)):
            try:
                await self.resume(carrier, clock=clock, max_wait=max_wait)
            except RunLockedError:  # the live parent's process hands it to the child
                if _records(self.store.read(run_id), message):
                    break
                await asyncio.sleep(HAND_OVER_POLL)
                continue
            break
        history = self.store.read(run_id)
        ended = history.terminal
        outcome = RunOutcome.from_terminal(run_id, ended) if ended is not None else None
        return SignalSent(run_id, message, recorded=_records(history, message), outcome=outcome)

    def _carrier(self, run_id: str) -> str:
        def lookup(found: str) -> RunInfo | None:
            try:
                return self.store.info(found)
            except WfrunError:
                return None

        return carrier_of(self.store.info(run_id), lookup).run_id

    def query(self, run_id: str, name: str, payload: Mapping[str, Any] | None = None) -> Any:
        history = self.store.read(run_id)
        definition = load_recorded(history.started)
        handler = definition.handler("query", name)
        from .engine import query_history

        result = query_history(definition, history.events, name, handler.encode_input(payload))
        return loads(encode(result, subject=f"the answer of query {name!r}"))

    def _inbox(self, run_id: str) -> Inbox:
        return Inbox(self.store, run_id)

    # -- reading runs ------------------------------------------------------------------------

    def history(self, run_id: str) -> RunHistory:
        history = self.store.read(run_id)
        history.status = self.store.status(history)
        return history

    def stream_history(self, run_id: str) -> HistoryStream:
        return self.store.stream(run_id)

    def follow(self, stream: EventStream) -> Iterator[tuple[Event, bytes]]:
        assert isinstance(stream, HistoryStream)
        run_id = stream.started.run_id
        checksummed = stream.started.format >= CHECKSUMMED
        offset = stream.intact_size  # past the whole events handed out: a torn tail is read again
        last = stream.last
        pending = b""
        while last.role != TERMINAL:
            chunk = self.store.read_from(stream.path, offset)
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                last = parse_line(stream.path, last.id + 1, line, checksummed=checksummed)
                yield last, line
            if not lines and not self.store.is_locked(run_id):
                return
            time.sleep(FOLLOW_INTERVAL)

    def list_runs(self, warn: Callable[[str], None] = lambda _: None) -> list[RunInfo]:
        return self.store.list_runs(warn)

    def remove_leftovers(self, warn: Callable[[str], None] = lambda _: None) -> list[str]:
        return self.store.remove_stale_temporaries(warn)

    def replay(
        self,
        run_id: str,
        definition: WorkflowDefinition | None = None,
        on_history: Callable[[RunHistory], None] | None = None,
    ) -> ReplayResult:
        # The events are all it needs, and of a call's first attempt only the completion.
        history = self.store.read(run_id, keep_stored=False, keep_starts=False)
        if on_history is not None:
            on_history(history)
        return replay_history(history, definition or load_recorded(history.started))


def _engine_class() -> type[RunEngine]:
    """`RunEngine`, imported on first use (see the imports above) and kept: an import
    statement run per run costs a lookup through the import system each time."""
    global _run_engine
    if _run_engine is None:
        from .engine import RunEngine

        _run_engine = RunEngine
    return _run_engine


_run_engine: type[RunEngine] | None = None


def _signal_input(
    definition: WorkflowDefinition,
    history: RunHistory,
    name: str,
    payload: Mapping[str, Any] | None,
) -> bytes:
    """A signal's encoded input, checked against its handler, or against the schema of the
    input the run waits for under that label (`wait_for_input`)."""
    if ("signal", name) in definition.handlers:
        return definition.handler("signal", name).encode_input(payload)
    from .engine import pending_inputs

    waiting = pending_inputs(definition, history.events)
    schema = waiting.get(name)
    if schema is None:
        defined = sorted(n for kind, n in definition.handlers if kind == "signal")
        inputs = f", and waits for input {', '.join(map(repr, waiting))}" if waiting else ""
        raise UsageError(
            f"workflow {definition.name!r} has no signal {name!r}; it defines "
            f"{', '.join(map(repr, defined)) or 'no signals'}{inputs}"
        )
    try:
        value = schema.model_validate(dict(payload or {}))
    except ValueError as exc:  # pydantic's ValidationError: say which field, and why
        raise InputError(f"input {name!r} refused, nothing was sent: {exc}") from None
    return encode(value.model_dump(mode="json"), subject=f"input {name!r}")


def _records(history: RunHistory, message: str) -> bool:
    """Whether the history holds the message (each is recorded once, by whoever runs the run)."""
    return any(
        isinstance(event, SignalReceived | CancelRequested | UpdateAccepted | UpdateCompleted)
        and event.message == message
        for event in history.events
    )


def _answer(history: RunHistory, message: str) -> UpdateCompleted | None:
    for event in history.events:
        if isinstance(event, UpdateCompleted) and event.message == message:
            return event
    return None


def _same_run(
    history: RunHistory,
    definition: WorkflowDefinition,
    input_data: bytes,
    parent: str | None = None,
) -> None:
    """An idempotent start of an existing run must ask for that very run: same workflow, same
    input, and for a child the same parent. Anything else is a mistake (a reused id), never
    answered with the other's result."""
    started = history.started
    another = "give the child another execution_id" if parent else "pick another --run-id"
    if parent is not None and started.parent != parent:
        owner = f"a child of run {started.parent}" if started.parent else "a run of its own"
        raise InputError(
            f"run {parent} starts child run {started.run_id}, but that run exists as {owner}: "
            "give the child another execution_id (nothing was run)"
        )
    if started.workflow != definition.name:
        raise InputError(
            f"run {started.run_id} exists for workflow {started.workflow!r}, not "
            f"{definition.name!r}: {another} (nothing was run)"
        )
    if plain(started.input) != loads(input_data):
        raise InputError(
            f"run {started.run_id} exists with input {abbreviate(plain(started.input))}, not "
            f"{abbreviate(loads(input_data))}: {another}, or start it with the same input to "
            "get its result (nothing was run)"
        )


def _continues(history: RunHistory, previous: str) -> None:
    """The next run of a chain must say it continues ``previous``: a history names it, and a
    history may have been edited (into a loop, or into another run)."""
    started = history.started
    if started.continued_from != previous:
        path = str(getattr(history, "path", started.run_id))
        raise HistoryCorruptError(
            f"run {previous} continued as new as run {started.run_id}, but run "
            f"{started.run_id} did not continue from {previous}; a history was damaged or "
            "edited. Nothing was run",
            path=path,
            line=1,
        )


def replay_history(history: RunHistory, definition: WorkflowDefinition) -> ReplayResult:
    """Replay ``history`` against ``definition``'s code, running and writing nothing."""
    from .engine import replay_only

    recorded, found = replay_only(definition, history.events)
    return ReplayResult(
        run_id=history.started.run_id,
        events=len(history.events) + history.left_out,
        finished=recorded.terminal is not None,
        next_steps=len(found.backlog),
    )
