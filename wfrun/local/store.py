"""The history store: one append-only JSON Lines file per run, ``<home>/runs/<run-id>.jsonl``.

Guarantees, and how they are kept:

- *Durable before observed.* `HistoryWriter.sync` writes what was appended and fsyncs it; the
  engine lets the workflow see an outcome only after the sync that recorded it. Events the
  workflow does not observe (an attempt starting) are written without a sync of their own and
  ride along with the next one, so a sequential step costs one fsync.
- *Never half-created.* A run file is written in full under a temporary name (first event,
  fsync, lock) and linked into place; an existing run is never overwritten.
- *One process at a time.* The writer holds an exclusive ``flock`` on the file; the kernel
  releases it when the process dies, however it dies.
- *Damage is named, never papered over.* Every read goes through `wfrun.local.history`; a torn
  tail is cut off by `HistoryWriter.repair_tail` only when a resume is about to append.
- *Private.* Files are created 0600 and the runs folder 0700: payloads may hold private data.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from pathlib import Path
from typing import Any, Final, TypeVar

from .. import settings
from ..clock import Clock
from ..errors import HistoryCorruptError, InvalidRunIdError, RunLockedError, RunNotFoundError
from ..events import TERMINAL, Event, Observer, WorkflowStarted, format_ts, serialize
from ..runs import RunInfo, RunStatus
from .history import History, parse_history, parse_line

_RUN_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")

E = TypeVar("E", bound=Event)


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is ``[A-Za-z0-9._-]{1,128}``, not hidden and free of ``..``."""
    if not _RUN_ID.fullmatch(run_id) or run_id.startswith(".") or ".." in run_id:
        raise InvalidRunIdError(
            f"invalid run id {run_id!r}: use 1 to 128 of A-Z a-z 0-9 . _ -, not starting "
            "with '.' and without '..'"
        )
    return run_id


class HistoryWriter:
    """Appends events to one run's file, which it holds locked until `close`."""

    def __init__(self, fd: int, path: Path, next_id: int, clock: Clock) -> None:
        self._fd = fd
        self.path = path
        self._next_id = next_id
        self._clock = clock
        self._buffer = bytearray()
        self.observers: list[Observer] = []

    def append(self, cls: type[E], /, **fields: Any) -> E:
        """Record a new event (numbered and timestamped here); written at the next flush."""
        event = cls(id=self._next_id, ts=format_ts(self._clock.now()), **fields)
        self._buffer += serialize(event)
        self._buffer += b"\n"
        self._next_id += 1
        for observer in self.observers:
            observer(event)
        return event

    def flush(self) -> None:
        """Hand what was appended to the OS (visible to readers, not yet durable)."""
        if self._buffer:
            with memoryview(self._buffer) as view:
                written = 0
                while written < len(view):  # a write may be partial (signals, full disks)
                    written += os.write(self._fd, view[written:])
            self._buffer.clear()

    def sync(self) -> None:
        """Make everything appended so far durable: one write, one fsync."""
        self.flush()
        os.fsync(self._fd)

    def repair_tail(self, history: History) -> None:
        """Cut off a torn last line (see `History.note`) before appending after it."""
        if history.torn_tail:
            os.ftruncate(self._fd, history.intact_size)
            os.fsync(self._fd)

    def close(self) -> None:
        """Release the run (and its lock) without writing what was not flushed."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class RunStore:
    """The runs under one wfrun home."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = settings.home(home)
        self.runs_dir = self.home / "runs"

    def path(self, run_id: str) -> Path:
        return self.runs_dir / f"{validate_run_id(run_id)}.jsonl"

    # -- writing -----------------------------------------------------------------------------

    def create(
        self, started: dict[str, Any], clock: Clock
    ) -> tuple[HistoryWriter, WorkflowStarted]:
        """Create, lock and durably write a new run whose first event has ``started``'s fields.

        Raises `FileExistsError` when the run already exists (the caller decides what that
        means: resume it, or report it).
        """
        run_id = started["run_id"]
        final = self.path(run_id)
        self._ensure_dirs()
        temporary = self.runs_dir / f".{run_id}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            writer = HistoryWriter(fd, final, 1, clock)
            event = writer.append(WorkflowStarted, **started)
            writer.sync()
            os.link(temporary, final)  # atomic, and refuses to replace an existing run
        except BaseException:
            os.close(fd)
            raise
        finally:
            temporary.unlink(missing_ok=True)
        self._sync_dir()
        return writer, event

    def open_for_append(self, run_id: str, clock: Clock) -> tuple[HistoryWriter, History]:
        """Lock a run for this process and read it; `RunLockedError` if another holds it."""
        path = self.path(run_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            raise self._not_found(run_id) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLockedError(
                    f"run {run_id} is being executed by another live process (its history "
                    f"{path} is locked); wait for it to finish, or stop that process"
                ) from None
            history = parse_history(path, _read_all(fd), run_id)
        except BaseException:
            os.close(fd)
            raise
        return HistoryWriter(fd, path, len(history.events) + 1, clock), history

    # -- reading -----------------------------------------------------------------------------

    def read(self, run_id: str) -> History:
        """Read and check a run's history without locking it (a torn tail is reported only)."""
        path = self.path(run_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self._not_found(run_id) from None
        return parse_history(path, data, run_id)

    def is_locked(self, run_id: str) -> bool:
        """Whether a live process holds the run."""
        try:
            fd = os.open(self.path(run_id), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def status(self, history: History) -> RunStatus:
        """COMPLETED/FAILED… from the terminal event, else RUNNING (locked) or INTERRUPTED."""
        terminal = history.terminal
        if terminal is not None:
            return RunStatus.after(terminal)
        return self._unfinished(history.started.run_id)

    def _unfinished(self, run_id: str) -> RunStatus:
        return RunStatus.RUNNING if self.is_locked(run_id) else RunStatus.INTERRUPTED

    def run_ids(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(
            p.name.removesuffix(".jsonl")
            for p in self.runs_dir.iterdir()
            if p.name.endswith(".jsonl") and not p.name.startswith(".")
        )

    def list_runs(self) -> list[RunInfo]:
        """Every run, oldest first, read from the first and last lines of each file.

        A damaged file is listed with status ``DAMAGED`` and the problem, rather than hidden.
        """
        infos = []
        for run_id in self.run_ids():
            try:
                infos.append(self._info(run_id))
            except HistoryCorruptError as exc:
                infos.append(RunInfo(run_id, "?", RunStatus.DAMAGED, "", None, str(exc)))
        return sorted(infos, key=lambda info: info.started)

    def _info(self, run_id: str) -> RunInfo:
        path = self.path(run_id)
        first, last = _first_and_last_lines(path)
        started = parse_line(path, 1, first)
        if not isinstance(started, WorkflowStarted):
            raise HistoryCorruptError(
                f"{path}:1: the first event is {started.type}, not WorkflowStarted",
                path=str(path),
                line=1,
            )
        final = parse_line(path, 0, last)
        if final.role == TERMINAL:
            return RunInfo(run_id, started.workflow, RunStatus.after(final), started.ts, final.ts)
        return RunInfo(run_id, started.workflow, self._unfinished(run_id), started.ts, None)

    # -- internals ---------------------------------------------------------------------------

    def _not_found(self, run_id: str) -> RunNotFoundError:
        return RunNotFoundError(
            f"no run {run_id!r} under {self.home} (looked for {self.path(run_id)}); "
            "`wfrun list` shows the runs there, --home or WFRUN_HOME picks another home"
        )

    def _ensure_dirs(self) -> None:
        for folder in (self.home, self.runs_dir):
            if not folder.is_dir():
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                folder.chmod(0o700)

    def _sync_dir(self) -> None:
        # The new file's name must survive a crash too, not only its contents.
        fd = os.open(self.runs_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0)


def _first_and_last_lines(path: Path) -> tuple[bytes, bytes]:
    """The first and the last complete lines, reading only the two ends of the file."""
    with open(path, "rb") as f:
        first = f.readline()
        if not first.endswith(b"\n"):
            raise HistoryCorruptError(
                f"{path}:1: the file holds no complete event", path=str(path), line=1
            )
        size = f.seek(0, os.SEEK_END)
        block = 4096
        while True:
            start = max(0, size - block)
            f.seek(start)
            tail = f.read(size - start)
            end = tail.rfind(b"\n")  # whatever follows is a torn tail, not an event
            begin = tail.rfind(b"\n", 0, end) + 1
            if begin > 0 or start == 0:
                return first[:-1], tail[begin:end]
            block *= 4
