"""What a backend tells its callers about runs: statuses, outcomes, listings, histories.

These values cross the backend seam (`wfrun.backend`): the local backend builds them from its
history files, another backend from its own records, and the command line and the Python API
read them without knowing which backend they came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from . import entropy
from .clock import Clock, SystemClock

if TYPE_CHECKING:
    from pydantic import BaseModel

from .errors import Failure
from .events import (
    TERMINAL,
    Event,
    RunBlocked,
    RunWaiting,
    WorkflowCanceled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowTimedOut,
)


class RunStatus(StrEnum):
    """Where a run stands. A `StrEnum`: it prints, compares and encodes as its name."""

    #: A live process holds the run.
    RUNNING = "RUNNING"
    #: No live process and not finished: ``resume`` continues it.
    INTERRUPTED = "INTERRUPTED"
    #: Stopped on purpose until something arrives; ``resume`` continues it later.
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    #: Past its ``execution_timeout``.
    TIMED_OUT = "TIMED_OUT"
    #: Ended by ``wfrun cancel`` (after whatever cleanup the workflow did).
    CANCELED = "CANCELED"
    #: Ended by handing over to a fresh run of the same workflow (``continue_as_new``).
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"
    #: Its workflow code raised a bug: fix the code, then ``resume`` carries it on.
    BLOCKED = "BLOCKED"
    #: Its history cannot be read (``list`` shows the problem).
    DAMAGED = "DAMAGED"

    @property
    def ended(self) -> bool:
        """Whether the run is over for good."""
        return self in _ENDED

    @classmethod
    def after(cls, last: Event) -> RunStatus:
        """The status a run's last event gives it, when no process runs it."""
        if type(last) in _BY_TERMINAL:
            return _BY_TERMINAL[type(last)]
        if isinstance(last, RunWaiting):
            return RunStatus.WAITING
        if isinstance(last, RunBlocked):
            return RunStatus.BLOCKED
        return RunStatus.INTERRUPTED


_BY_TERMINAL: dict[type[Event], RunStatus] = {
    WorkflowCompleted: RunStatus.COMPLETED,
    WorkflowFailed: RunStatus.FAILED,
    WorkflowTimedOut: RunStatus.TIMED_OUT,
    WorkflowCanceled: RunStatus.CANCELED,
    WorkflowContinuedAsNew: RunStatus.CONTINUED_AS_NEW,
}
_ENDED = frozenset(_BY_TERMINAL.values())


#: Asks a person for an input the workflow waits for (`InteractiveWorkflow.wait_for_input`):
#: called with its label and schema, returns the answer's fields as JSON values. A backend
#: given one (the command line, on a terminal) asks instead of letting the run wait.
InputPrompt = Callable[[str, "type[BaseModel]"], dict[str, Any]]


def new_run_id(workflow: str, clock: Clock | None = None) -> str:
    """``user_report-20261124-101500-3f9a1c``: readable, sortable, unique."""
    moment = (clock or SystemClock()).now().astimezone(UTC)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", workflow).strip(".-")[:80] or "run"
    return f"{slug}-{moment:%Y%m%d-%H%M%S}-{entropy.token_hex(3)}"


@dataclass(slots=True, frozen=True)
class RunOutcome:
    """How a run ended (or stopped), as the CLI and the Python API report it."""

    run_id: str
    status: RunStatus
    #: The workflow's result as JSON, when COMPLETED.
    result: Any = None
    #: The recorded failure, when FAILED or TIMED_OUT.
    error: Failure | None = None
    #: Why a run stopped without ending (WAITING).
    reason: str | None = None
    #: When a WAITING run is due to go on (its next timer); None: when a message arrives.
    until: str | None = None
    #: CONTINUED_AS_NEW: the run that carries on. Otherwise: the runs of the chain that
    #: led to this one (oldest first), when it was continued as new.
    continued_as: str | None = None
    chain: tuple[str, ...] = ()

    @classmethod
    def from_terminal(cls, run_id: str, event: Event) -> RunOutcome:
        status = RunStatus.after(event)
        if isinstance(event, WorkflowContinuedAsNew):
            return cls(run_id, status, continued_as=event.run_id)
        if isinstance(event, WorkflowCompleted):
            return cls(run_id, status, result=event.result)
        if isinstance(event, WorkflowTimedOut):
            message = f"the run went past its execution_timeout of {event.timeout:g}s"
            return cls(run_id, status, error=Failure("TimeoutError", message))
        if isinstance(event, WorkflowCanceled):
            message = f"the run was cancelled: {event.reason}" if event.reason else "cancelled"
            return cls(run_id, status, error=Failure("CancelledError", message))
        assert isinstance(event, WorkflowFailed)
        return cls(run_id, status, error=Failure.from_record(event.error))


@dataclass(slots=True, frozen=True)
class RunInfo:
    """One line of ``wfrun list``."""

    run_id: str
    workflow: str
    status: RunStatus
    started: str
    ended: str | None
    #: What is wrong with a DAMAGED run's history.
    problem: str | None = None
    #: When a WAITING run is due to go on; None: when a message arrives.
    due: str | None = None
    #: Whether messages wait in its inbox that it has not read yet.
    messages: bool = False
    #: A BLOCKED run: whether its code changed since it blocked (``resume --all`` tries it).
    code_changed: bool = False
    #: A BLOCKED run that could only wait for a BLOCKED child: that child is not BLOCKED any
    #: more (it was fixed and carried on by itself), so this run can go on.
    unblocked: bool = False
    #: The run that started this one as its child (and carries it on), if any.
    parent: str | None = None
    #: A CONTINUED_AS_NEW run whose next run does not exist (a crash came between).
    successor_missing: bool = False

    def can_go_on(self, now: str) -> bool:
        """Whether a resume would move the run on now (what ``resume --all`` picks): it was
        interrupted, its timer is due (``now``: ISO 8601 UTC, which sorts as time), a message
        waits for it, the code of a BLOCKED run (or the child that blocked it) changed (the same
        code raises again), or it
        continued as new but its next run was never created."""
        if self.status is RunStatus.INTERRUPTED or self.successor_missing:
            return True
        if self.status is RunStatus.BLOCKED:
            return self.code_changed or self.unblocked
        if self.status is not RunStatus.WAITING:
            return False
        return self.messages or (self.due is not None and self.due <= now)


def carrier_of(run: RunInfo, lookup: Callable[[str], RunInfo | None]) -> RunInfo:
    """The run that carries ``run`` on: its topmost ancestor that has not ended (a parent
    resumes its unfinished children), else the run itself. ``lookup`` finds a run by id."""
    seen = {run.run_id}
    while run.parent is not None and run.parent not in seen:
        parent = lookup(run.parent)
        if parent is None or parent.status.ended or parent.status is RunStatus.DAMAGED:
            break
        seen.add(parent.run_id)
        run = parent
    return run


def runs_to_resume(runs: list[RunInfo], now: str) -> list[str]:
    """The run ids ``resume --all`` continues, in the order given: those that can go on, each
    through the run that carries it (`carrier_of`), once."""
    by_id = {run.run_id: run for run in runs}
    chosen = [carrier_of(run, by_id.get).run_id for run in runs if run.can_go_on(now)]
    return list(dict.fromkeys(chosen))


@dataclass(slots=True, kw_only=True)
class RunHistory:
    """A run's events, oldest first, and what the reader had to say about them."""

    events: list[Event]
    #: The events exactly as the backend stores them (JSON Lines), for ``history --json``.
    stored: bytes = b""
    #: Something the user should know about how the history was read (a repaired tail).
    note: str | None = None
    #: Where the run stood when it was read.
    status: RunStatus = RunStatus.INTERRUPTED
    #: Events of the history left out of `events` (a replay's read leaves out the starts of
    #: first attempts that their completions follow: see `wfrun.local.history.parse_history`).
    left_out: int = 0

    def __post_init__(self) -> None:
        self.status = RunStatus.after(self.events[-1])

    @property
    def waiting(self) -> RunWaiting | None:
        """What the run waits for, when it stopped to wait (and nothing happened since)."""
        last = self.events[-1]
        return last if isinstance(last, RunWaiting) else None

    @property
    def started(self) -> WorkflowStarted:
        first = self.events[0]
        assert isinstance(first, WorkflowStarted)
        return first

    @property
    def terminal(self) -> Event | None:
        last = self.events[-1]
        return last if last.role == TERMINAL else None


class EventStream(Protocol):
    """A run's events read one at a time, for showing a history of any length.

    Iterating yields each event, oldest first, with its line exactly as stored (for
    ``history --json``), and raises `HistoryCorruptError` at the first damaged line, after
    the events before it. ``close`` (or the end of a ``with`` block) releases what it holds.
    """

    #: The first event, read and checked when the stream was opened.
    started: WorkflowStarted
    #: Something the user should know about how the history was read (a torn tail): known
    #: once iteration ended.
    note: str | None
    #: The last event handed out, once iteration (or `lines`) ended: where ``--follow`` goes on.
    last: Event

    def __iter__(self) -> Iterator[tuple[Event, bytes]]: ...

    def lines(self) -> Iterator[bytes]:
        """Each line exactly as stored, checked as iterating checks it, without building the
        events (for ``history --json``, which copies the lines)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> EventStream: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class SignalSent:
    """What became of a signal: it is durable in the run's inbox in any case."""

    run_id: str
    #: The message's id (the history records it in ``SignalReceived``).
    message: str
    #: Whether it is in the run's history already (else the run reads it when it goes on).
    recorded: bool
    #: How the run went on, when the signal resumed it in this process.
    outcome: RunOutcome | None = None


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """An update's answer: what its handler returned, or why it failed or was refused."""

    run_id: str
    result: Any = None
    error: Failure | None = None
    #: The validator refused it: the handler never ran, nothing changed.
    rejected: bool = False
    #: How the run went on, when the update resumed it in this process.
    outcome: RunOutcome | None = None
    #: No answer yet (the live run is busy): the update stays queued and will be answered.
    pending: bool = False


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a successful replay found."""

    #: The run id the history belongs to.
    run_id: str
    #: How many events the history holds.
    events: int
    #: Whether the history records the run's end.
    finished: bool
    #: How many new steps the code would take after an unfinished history.
    next_steps: int
