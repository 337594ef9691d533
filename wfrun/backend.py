"""Seam 2, for callers: what the command line and the Python API ask of a backend.

A backend keeps runs, carries them out and takes messages to them. The local backend
(`wfrun.local.LocalBackend`: history files, in-process engine) is the first implementation;
a second one (a Temporal cluster) implements the same `Backend` and plugs in at
`open_backend`, and neither the command line nor ``execute_workflow`` changes.

Everything crossing the seam is backend-neutral: definitions (`wfrun.definitions`), encoded
payloads (`wfrun.payload`), events (`wfrun.events`) and run reports (`wfrun.runs`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from .clock import Clock
from .definitions import WorkflowDefinition
from .events import Event, Observer
from .runs import (
    EventStream,
    InputPrompt,
    ReplayResult,
    RunHistory,
    RunInfo,
    RunOutcome,
    SignalSent,
    UpdateResult,
)


class Backend(Protocol):
    """Where runs are kept and carried out."""

    @property
    def location(self) -> str:
        """Where this backend keeps its runs, as messages name it (a folder, an address)."""
        ...

    def validate_run_id(self, run_id: str) -> str:
        """Return ``run_id`` if this backend accepts it; else raise `InvalidRunIdError`."""
        ...

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
        """Start a run of ``definition`` with its encoded input and carry it to its end.

        A run whose next timer is more than ``max_wait`` seconds away, or that only a message
        can move, stops WAITING instead (None: wait here, however long). With ``ask``, an input
        the workflow waits for is asked for instead.

        With the ``run_id`` of an existing run, continue that run instead: a finished one
        returns its recorded outcome without running anything, an unfinished one is resumed.
        """
        ...

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
        """Replay a run's history against today's code and carry it on to its end.

        ``on_history`` sees the history as read, before anything runs. Without a
        ``definition``, the workflow is loaded from the TARGET the run recorded.
        """
        ...

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
        """Send signal ``name`` (its arguments by name) to a run, durably, then see it taken.

        The message is durable before anything else happens. A live run records it within a
        second; a run that nobody runs is resumed here (unless ``resume`` is false: then the
        next resume takes it). Raises `UsageError` for a name the workflow does not define
        (listing those it does), bad arguments, or a run that has ended.
        """
        ...

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
        """Ask a run to stop, durably, as a signal is sent (see `signal`).

        The workflow sees `asyncio.CancelledError` at its current await, may clean up (running
        activities to do so), and the run ends CANCELED when it lets the error through.
        """
        ...

    async def update(
        self,
        run_id: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        max_wait: float | None = None,
    ) -> UpdateResult:
        """Send update ``name`` as a signal is sent, and wait for its handler's answer."""
        ...

    def query(self, run_id: str, name: str, payload: Mapping[str, Any] | None = None) -> Any:
        """Ask query ``name`` of a run (live, waiting or ended): its answer, as JSON values.

        The history is replayed and the handler called: no activity runs, nothing is written.
        """
        ...

    def history(self, run_id: str) -> RunHistory:
        """A run's events and status, read without taking the run over."""
        ...

    def stream_history(self, run_id: str) -> EventStream:
        """A run's events read one at a time, without taking the run over: memory does not
        grow with the history's length (``wfrun history``)."""
        ...

    def follow(self, stream: EventStream) -> Iterator[tuple[Event, bytes]]:
        """The events recorded after those ``stream`` handed out (it was read to its end),
        each with its stored line, as they come, until the run ends or no process is carrying
        it on."""
        ...

    def list_runs(self, warn: Callable[[str], None] = ...) -> list[RunInfo]:
        """Every run, oldest first; a damaged one with status DAMAGED and its problem.

        What is not a run at all (a stray folder, a link, someone else's file) is skipped,
        and ``warn`` is told so in one line.
        """
        ...

    def remove_leftovers(self, warn: Callable[[str], None] = ...) -> list[str]:
        """Remove what processes killed midway left behind and no run needs, and say what.

        Locally: the temporary files of run creations whose process is gone
        (`wfrun.local.store.RunStore.remove_stale_temporaries`). ``resume --all``, which
        cron runs after crashes, does this first. What is not safe to remove is left alone,
        and ``warn`` is told why.
        """
        ...

    def replay(
        self,
        run_id: str,
        definition: WorkflowDefinition | None = None,
        on_history: Callable[[RunHistory], None] | None = None,
    ) -> ReplayResult:
        """Check today's code against a run's history: nothing runs, nothing is written.

        ``on_history`` sees the history before its workflow is loaded. Raises
        `NonDeterminismError` where code and history disagree.
        """
        ...


def open_backend(
    home: str | os.PathLike[str] | None = None,
    *,
    temporal: str | None = None,
    namespace: str | None = None,
    task_queue: str | None = None,
    code: WorkflowDefinition | None = None,
) -> Backend:
    """The backend that keeps the runs under ``home`` (else ``$WFRUN_HOME``, else ``./.wfrun``).

    With ``temporal`` (``HOST:PORT``), the Temporal cluster there instead (``pip install
    'wfrun[temporal]'``), in ``namespace``, starting runs on ``task_queue``; ``code`` is the
    workflow the user named to check messages against (see `wfrun.temporal.backend`).
    """
    if temporal is not None:
        return _temporal_backend(temporal, namespace, task_queue, code)
    # Imported on first use: `import wfrun` (defining workflows, calling activities directly)
    # needs no engine, store or history reader, which are most of its import time. Kept
    # once imported: an import statement per call is a lookup through the import system.
    global _local_backend
    if _local_backend is None:
        from .local.backend import LocalBackend

        _local_backend = LocalBackend
    return _local_backend(home)


#: `wfrun.local.backend.LocalBackend`, once `open_backend` imported it.
_local_backend: Callable[[str | os.PathLike[str] | None], Backend] | None = None


def _temporal_backend(
    address: str, namespace: str | None, task_queue: str | None, code: WorkflowDefinition | None
) -> Backend:
    # Imported only here: `import wfrun` never imports temporalio, an optional dependency.
    try:
        from .temporal.backend import TemporalBackend
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("temporalio"):
            raise
        from .errors import UsageError

        raise UsageError(
            "--temporal needs the Temporal extra: pip install 'wfrun[temporal]'"
        ) from None
    return TemporalBackend(address, namespace=namespace, task_queue=task_queue, code=code)
