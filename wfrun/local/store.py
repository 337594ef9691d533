"""The history store: one append-only JSON Lines file per run, ``<home>/runs/<run-id>.jsonl``.

Guarantees, and how they are kept:

- *Durable before anything leaves the run.* `HistoryWriter.sync` writes what was appended and
  syncs it. A run alone in its process begins the sync of an outcome with `sync_soon` (the
  kernel flushes it while the workflow takes its next step) and `settle` waits for it before
  anything the workflow did since leaves the run (see `wfrun.local.engine`); a failed sync
  fails every `settle` after it. Events the workflow does not observe (an attempt starting)
  are written without a sync of their own and ride along with the next one, so a sequential
  step costs one sync.
- *A sync writes data, not metadata.* An fsync of a file whose length changed must also write
  its inode through the journal: that, not the data, is most of a durable append. So a
  history reserves space ahead of its events (`posix_fallocate`, 64 KiB at first, then twice
  the last reservation up to 1 MiB: short runs stay small, long ones grow rarely), each event
  is written in place at the logical end, inside the file's length, and each sync is an
  `fdatasync`, which writes the data and only the metadata needed to read it back: the
  length when a reservation changed it, and the conversion of the written part of a reserved
  (unwritten) extent to a written one. `close` trims the file to its logical length. Where
  the OS has no `posix_fallocate` or `fdatasync`, or the file system refuses a reservation,
  a writer appends and fsyncs as before; a reservation refused for want of space (a full
  disk, a quota, a size limit) is skipped, and the events are written unreserved: they fail
  on their own, cleanly (see below), only if they themselves do not fit.
- *A zero tail is the end of the file.* No event line holds a zero byte, so every reader stops
  where the zeros at the end begin (`wfrun.local.history.content_end`); a live run's file,
  and a file whose process died before its trim, end in zeros, which are not damage. After a
  kill -9 the file holds everything written (the page cache survives the process): whole
  events, maybe the start of one more (a torn tail, cut off by the next resume), then zeros.
  After a power cut it holds at least every event up to the last `fdatasync` that returned
  (or AIO fsync that landed): neither is done before those pages, the reservation's length
  and the extent conversion are on disk. Past that point any page written since may or may
  not have reached the disk, and a reserved page that did not reads as zeros: whole events
  nothing has left the run for yet, then at most a torn line (possibly with zeros in it),
  then zeros. Nothing whose effects anybody outside the run saw can be lost, and what can be
  lost was never acknowledged.
- *Never half-created.* A run file is written in full under a temporary name (first event,
  fsync, lock) and linked into place; an existing run is never overwritten.
- *One process at a time.* The writer holds the run's lock (`wfrun.local.locks`: a byte-range
  lock in the home's ``runs/.locks``); the kernel releases it when the process dies, however
  it dies.
- *Few descriptors.* The lock needs no descriptor of the run's own, so a writer need not keep
  its history open: it keeps it between writes while the process holds fewer than
  `keep_open()` history files open (a reopen per write costs a busy process several syscalls,
  each a wait for the GIL), past that only while its run is the only live one in the process
  (`wfrun.local.syncs.crowded`), and never while the run waits (`HistoryWriter.park`).
  Thousands of runs fit in a process's 1,024 descriptors.
- *Damage is named, never papered over.* Every read goes through `wfrun.local.history`; a torn
  tail is cut off by `HistoryWriter.repair_tail` only when a resume is about to append.
- *Private.* Files are created 0600 and the runs folder 0700: payloads may hold private data.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import resource
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

from .. import entropy, settings
from ..clock import Clock, SystemClock
from ..errors import (
    HistoryCorruptError,
    HistoryIOError,
    InvalidRunIdError,
    RunLockedError,
    RunNotFoundError,
    WfrunError,
)
from ..events import (
    CHECKSUMMED,
    TERMINAL,
    ActivityScheduled,
    ActivityStarted,
    Encoded,
    Event,
    Observer,
    WorkflowStarted,
    format_ts,
    is_run_id,
    new_line,
    scheduled_line,
    started_line,
)
from ..loader import fingerprint, target_file
from ..runs import RunInfo, RunStatus
from . import locks, syncs
from .history import History, parse_history, parse_line, parse_started
from .listing import ListIndex, RunEnds, _private
from .stream import HistoryStream

if TYPE_CHECKING:
    from .aio import Flight

E = TypeVar("E", bound=Event)
T = TypeVar("T")


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`` and free of ``..``.

    No path traversal, no hidden files, and nothing that looks like an option (``-x``).
    """
    if not is_run_id(run_id):
        raise InvalidRunIdError(
            f"invalid run id {run_id!r}: use 1 to 128 of A-Z a-z 0-9 . _ -, starting with a "
            "letter, a digit or '_', and without '..'"
        )
    return run_id


class HistoryWriter:
    """Appends events to one run's file, whose run it holds locked until `close`.

    A write that fails (or stops short) poisons the writer: the file is cut back to its last
    whole event, and every later write raises the same `HistoryIOError` without touching the
    file, so a failing disk can never leave a duplicated or half event in the middle of it.

    The file is open only while it is needed (see the module docstring): a closed one is
    opened again by the next write, and must be the very file the writer started with.
    """

    def __init__(
        self,
        fd: int,
        path: Path,
        next_id: int,
        clock: Clock,
        *,
        size: int,
        allocated: int | None = None,
        write: Callable[[int, bytearray | memoryview], int] = os.write,
        lock: locks.LockFile | None = None,
        run_id: str = "",
    ) -> None:
        self._fd = fd
        _open_files.opened()
        info = os.fstat(fd)
        #: The file this writer holds: one opened again must be it (not one put in its place).
        self._identity = (info.st_dev, info.st_ino)
        self._lock = lock
        self._run_id = run_id
        self.path = path
        self._next_id = next_id
        self._clock = clock
        #: The clock's reading, without the frame of `SystemClock.now` for the real clock
        #: (every event is stamped: three a step).
        self._now: Callable[[], datetime] = (
            partial(datetime.now, UTC) if type(clock) is SystemClock else clock.now
        )
        #: The logical length: every byte of it a whole event this writer knows of. The file
        #: descriptor's offset is there (no O_APPEND: writes go in place, before the zeros).
        self._size = size
        #: The file's length: past ``_size``, zeros reserved for the next events.
        self._allocated = size if allocated is None else allocated
        self._reservation = _FIRST_RESERVATION
        #: Whether space is reserved and synced with fdatasync (else: append and fsync).
        self._reserving = _can_reserve()
        self._write = write
        #: Held while the file's length or its end may change: a trim in a sync thread (see
        #: `sync_aside`) and the writes here never overlap.
        self._trimming = threading.Lock()
        self._buffer = bytearray()
        self._failure: HistoryIOError | None = None
        #: fsyncs of this writer's descriptor running in a sync thread (and a new run file's
        #: link into place: the run stays locked until it is done).
        self._syncing: set[syncs.Pending] = set()
        #: A sync of the run alone, begun by `sync_soon` (made at the first).
        self._flight: Flight | None = None
        self.observers: list[Observer] = []
        _open_writers.add(self)

    def append(self, cls: type[E], /, ts: str | None = None, **fields: Any) -> E:
        """Record a new event (numbered and timestamped here); written at the next flush.

        ``ts``: its time, when recorded together with others in one instant (`stamp`)."""
        event = cls(id=self._next_id, ts=ts or format_ts(self._now()), **fields)
        self._buffer += new_line(event)
        self._next_id += 1
        for observer in self.observers:
            observer(event)
        return event

    def append_started(self, seq: int, attempt: int, ts: str | None = None) -> None:
        """`append` an ActivityStarted event, straight into its line when nobody observes
        the events: one a step, and the engine needs no object of it."""
        if self.observers:
            self.append(ActivityStarted, ts, seq=seq, attempt=attempt)
            return
        self._buffer += started_line(self._next_id, ts or format_ts(self._now()), seq, attempt)
        self._next_id += 1

    def append_scheduled(self, seq: int, name: str, payload: Encoded, ts: str | None = None) -> str:
        """`append` an ActivityScheduled event, straight into its line when nobody observes
        the events (as `append_started`); its time (``ts``) is returned."""
        ts = ts or format_ts(self._now())
        if not self.observers:
            line = scheduled_line(self._next_id, ts, seq, name, payload)
            if line is not None:
                self._buffer += line
                self._next_id += 1
                return ts
        return self.append(ActivityScheduled, ts, seq=seq, name=name, input=payload).ts

    def stamp(self) -> str:
        """The time now, as `append` stamps an event: for events recorded in one instant
        (each clock reading and its text cost more than the event's line)."""
        return format_ts(self._now())

    def flush(self) -> None:
        """Hand what was appended to the OS (visible to readers, not yet durable)."""
        self._flush()
        if syncs.crowded():  # alone, the file stays open (`_put_down`): no frame to ask it
            self._put_down()

    def _flush(self) -> None:
        if self._failure is not None:
            raise self._failure
        buffer = self._buffer
        if not buffer:
            return
        fd = self._fd if self._fd >= 0 else self._open()
        with self._trimming:  # a trim in a sync thread never cuts what this writes
            end = self._size + len(buffer)
            if self._reserving and end > self._allocated:
                self._reserve(end)
            written = 0
            failure: OSError | None = None
            try:
                done = self._write(fd, buffer)  # whole, as a rule: one call, no view
                while True:
                    if done <= 0:
                        raise OSError(errno.EIO, "the write made no progress")
                    written += done
                    if written >= len(buffer):
                        break
                    with memoryview(buffer) as view:  # a partial write (signals, full disks)
                        done = self._write(fd, view[written:])
            except OSError as exc:
                failure = exc
            if failure is None:
                self._size += written
                if self._size > self._allocated:
                    self._allocated = self._size
        if failure is not None:
            whole = buffer.rfind(b"\n", 0, written) + 1
            self._fail(failure, "write", keep=self._size + whole)
        buffer.clear()

    def sync(self) -> None:
        """Make everything appended so far durable: one write, one fdatasync (or fsync)."""
        self.settle()  # first: what this writes may be read at once (an update's answer)
        self._flush()
        self._sync_here(self._fd if self._fd >= 0 else self._open())
        if syncs.crowded():
            self._put_down()

    def _sync_here(self, fd: int) -> None:
        try:
            # fdatasync also writes the length when it changed: a reservation is durable too.
            (os.fdatasync if self._reserving else os.fsync)(fd)
        except OSError as exc:
            self._fail(exc, "sync", keep=None)

    def sync_soon(self) -> None:
        """Start making everything appended so far durable, and return before it is: the
        caller works on meanwhile, and calls `settle` before anything that needs it durable.

        For a run alone in its process (a crowd's syncs go to `sync_aside`). The kernel runs
        the sync aside (`wfrun.local.aio.Flight`); where it cannot, it is done here, now.
        """
        self._flush()
        fd = self._fd if self._fd >= 0 else self._open()
        flight = self._flight
        if flight is None:
            flight = self._flight = syncs.flight()
        if flight is not None and flight.full:
            # Landed here, not by `launch`: a failure among them must stop the run (a plain
            # fdatasync after it would not say it again: the AIO fsync consumed the error).
            self.settle()
        if flight is None or not flight.launch(fd, data_only=self._reserving):
            self._sync_here(fd)

    def settle(self) -> None:
        """Wait until what `sync_soon` started is durable (at once if nothing is under way).

        Raises if a sync of this writer failed before, even one landed by an earlier call:
        whoever asks is about to let something out of the run that depends on it."""
        if self._failure is not None:
            raise self._failure
        self._land()

    def _land(self) -> None:
        flight = self._flight
        if flight is not None and flight.in_the_air:
            code = flight.land()
            if code:
                self._fail(OSError(code, os.strerror(code)), "sync", keep=None)

    async def sync_aside(self, *, last: bool = False) -> None:
        """`sync`, with the fsync in a thread while other runs are live (`wfrun.local.syncs`).

        The write stays here, on the loop: appends go on meanwhile and land after it. The
        descriptor stays open until the thread is done with it (nothing closes it meanwhile:
        `park` waits for the sync), and only so many runs at a time may open one for a sync
        (`syncs.slot`; a file kept open between writes needs none): the rest wait for theirs
        holding none.

        ``last``: the run is about to let go of its file: the thread trims the reserved zeros
        after the sync too, which `close` would otherwise do on the loop (a change of the
        file's length is a journal entry: with many runs live it held all of them up).
        """
        if not syncs.crowded():
            self.sync()
            return
        if self._fd >= 0:
            # Its file is open already (kept open between writes, within `keep_open`): the
            # sync holds no descriptor more, so it needs no slot, nor a turn to wait for one.
            await self._sync_in_slot(last=last)
            return
        slots = syncs.slot()
        if not slots.take():  # nearly always free: no coroutine of `async with` to make
            await slots.wait()
        try:
            await self._sync_in_slot(last=last)
        finally:
            slots.release()

    async def _sync_in_slot(self, *, last: bool = False, linking: Path | None = None) -> None:
        """`sync_aside`'s work, for a caller that holds a `syncs.slot` already, or whose file
        is open already (it opens none).

        ``last``: the thread trims the reserved zeros after the sync (see `sync_aside`).
        ``linking``: the file is a new run's, still under this temporary name, which the
        thread links into place (`_link_one`) once the file is durable: one hand-off to the
        pool and one wake-up of the loop for both, where a hand-off of the link's own cost
        the loop about as much as the rest of the run's creation (~60k instructions a run,
        callgrind). A failed sync fails the writer (the link is not made); a failed link
        raises its own error, for `RunStore._linking` to say what it means.
        """
        self.settle()  # one begun while the run was alone
        self._flush()
        fd = self._open()
        then: Callable[[], None] | None = partial(self._trim, fd) if last else None
        refused: list[BaseException] | None = None  # a new run's only: not made every step
        if linking is not None:
            refused = []
            then = partial(_link_noted, linking, self.path, refused)
        awaited, future = syncs.submit_batched(fd, data_only=self._reserving, then=then)
        self._syncing.add(future)  # `close` waits for it (and for the link: the run is held)
        future.add_done_callback(self._synced)
        try:
            await awaited
        except OSError as exc:
            if refused and refused[0] is exc:
                raise
            self._fail(exc, "sync", keep=None)
        finally:
            self._put_down()

    def _trim(self, fd: int) -> None:
        """Cut the reserved zeros off (in a sync thread, or at `close`)."""
        with self._trimming:
            if self._allocated > self._size and self._failure is None:
                # Unsynced: should a power cut undo the trim, the zeros are read as the end.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
                    self._allocated = self._size

    def _synced(self, future: syncs.Pending) -> None:
        # In the sync thread, or here: a run that ended meanwhile is released by `close`.
        self._syncing.discard(future)

    def park(self) -> None:
        """Close the file while the run waits: a waiting run holds no descriptor."""
        if self._fd >= 0 and not self._syncing:  # a thread may be fsyncing it right now
            self._land()  # and the kernel may
            os.close(self._fd)
            self._fd = -1
            _open_files.closed()

    def _put_down(self) -> None:
        # In company, past the budget, the file is open only while written: N runs, not N
        # descriptors.
        if syncs.crowded() and _open_files.count > keep_open():
            self.park()

    def _open(self) -> int:
        """The file's descriptor, opened again if it was closed meanwhile."""
        if self._fd >= 0:
            return self._fd
        if self._lock is None:  # released: the run is someone else's business now
            raise HistoryIOError(f"{self.path}: the run was let go", path=str(self.path))
        try:
            fd = os.open(self.path, os.O_RDWR | _SAFE)
        except OSError as exc:
            raise io_error(exc, self.path, "cannot open") from None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != self._identity:
            os.close(fd)
            raise _untrusted(self.path, "it was replaced by another file while the run held it")
        # In place at the logical end: past it, the zeros are space reserved for what comes.
        os.lseek(fd, self._size, os.SEEK_SET)
        self._fd = fd
        _open_files.opened()
        return fd

    def _reserve(self, end: int) -> None:
        """Grow the file with zeros to hold at least ``end`` bytes, if the disk allows."""
        length = max(self._reservation, end - self._allocated)
        try:
            os.posix_fallocate(self._fd, self._allocated, length)
        except OSError as exc:
            if exc.errno not in _NO_ROOM:  # this file system cannot reserve: append from now on
                self._reserving = False
            # Without room, the events go unreserved: they fail on their own (the write names
            # the cause) only if they do not fit either. A reservation cut short still counts.
            with contextlib.suppress(OSError):
                self._allocated = max(self._allocated, os.fstat(self._fd).st_size)
            return
        self._allocated += length
        self._reservation = min(self._reservation * 2, _MOST_RESERVATION)

    def repair_tail(self, history: History) -> None:
        """Cut off a torn last line (see `History.note`) before appending after it."""
        if history.torn_tail:
            try:
                fd = self._open()
                os.ftruncate(fd, history.intact_size)  # the torn line and the zeros after it
                os.fsync(fd)
                os.lseek(fd, history.intact_size, os.SEEK_SET)
            except OSError as exc:
                self._fail(exc, "repair", keep=None)
            self._size = self._allocated = history.intact_size

    def close(self, *, after: Iterable[syncs.Pending] = ()) -> None:
        """Release the run (and its lock) without writing what was not flushed.

        With ``after`` (threads of the run's attempts, which nothing can stop), the lock is held
        until the last of them returns: no second process may run the run meanwhile.
        """
        after = [*after, *list(self._syncing)]  # a sync thread may hold the descriptor still
        pending = [future for future in list(after) if not future.done()]  # list(): atomic
        if not pending:
            self._release()
            return
        left = [len(pending)]
        guard = threading.Lock()

        def one_returned(_: object) -> None:
            with guard:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self._release()

        for future in pending:
            future.add_done_callback(one_returned)

    def _release(self) -> None:
        self._syncing.clear()  # called once they are done (`close`), or before any began
        with contextlib.suppress(HistoryIOError):  # the run stopped for a reason of its own
            self._land()
        if self._flight is not None:
            self._flight.close()
        if self._allocated > self._size and self._failure is None and self._lock is not None:
            with contextlib.suppress(HistoryIOError):
                self._trim(self._open())
        self.park()
        _open_writers.discard(self)
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release(self._run_id)

    def _fail(self, exc: OSError, action: str, *, keep: int | None) -> NoReturn:
        if self._flight is not None and self._flight.in_the_air:
            self._flight.land()  # it failed anyway: what it says changes nothing
        if keep is not None:
            # Whatever did reach the file past its last whole event goes: never acknowledged.
            with contextlib.suppress(OSError, HistoryIOError):
                fd = self._open()
                os.ftruncate(fd, keep)  # the reserved zeros go too
                self._size = self._allocated = keep
                os.fsync(fd)
        self._buffer = bytearray()  # a new one: a view on the old may live in the traceback
        self._failure = io_error(exc, self.path, f"cannot {action} the history")
        raise self._failure


#: The first reservation of a writer, and the largest (see the module docstring).
_FIRST_RESERVATION: Final = 64 * 1024
_MOST_RESERVATION: Final = 1024 * 1024
#: Why a reservation can fail on a file system that can reserve: the writes may still fit.
_NO_ROOM: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class _OpenFiles:
    """How many history files this process's writers hold open (their threads included)."""

    def __init__(self) -> None:
        self.count = 0
        self._mutex = threading.Lock()

    def opened(self) -> None:
        with self._mutex:
            self.count += 1

    def closed(self) -> None:
        with self._mutex:
            self.count -= 1


def keep_open() -> int:
    """History files kept open between writes, at most: a quarter of the soft limit on open
    files (256 under the usual 1,024), asked each time (a process may lower it at any time).
    Enough for a few hundred busy runs to write without reopening, few enough to leave the
    rest of the limit to the activities.

    Asked again at most every `_BUDGET_TTL` seconds: a crowded process asks at every write,
    and a system call there costs every run in the process."""
    global _budget
    now = time.monotonic()
    until, budget = _budget
    if now < until:
        return budget
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    budget = 1024 if soft == resource.RLIM_INFINITY else max(16, min(soft // 4, 1024))
    _budget = (now + _BUDGET_TTL, budget)
    return budget


_BUDGET_TTL: Final = 0.5
#: Until when `keep_open` holds, and what it said.
_budget: tuple[float, int] = (float("-inf"), 0)


_open_files = _OpenFiles()


class GroupSync:
    """fsyncs of one folder, shared by the threads that need one at once (a group commit).

    A caller made its change (a new name in the folder) before calling `sync`; an fsync that
    began after that covers it. So while one fsync runs, every caller that arrives waits for
    the next, which one of them runs for all: runs created together in a busy process cost a
    couple of folder fsyncs, not one each (each is a journal commit). A failed fsync raises in
    the thread that ran it; the others, not covered, try again (each may run its own).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._asked = 0
        self._done = 0
        self._running = False

    def sync(self, run: Callable[[], None]) -> None:
        """Return once an fsync (``run``) that began after this call has succeeded."""
        with self._cond:
            self._asked += 1
            mine = self._asked
            while self._done < mine:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                covers = self._asked  # every change asked for by now was made before this
                self._cond.release()
                try:
                    run()
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()  # the others look again: served, or their turn
                self._done = max(self._done, covers)


_group_syncs: dict[Path, GroupSync] = {}
_group_syncs_mutex = threading.Lock()


def _folder_syncs(folder: Path) -> GroupSync:
    with _group_syncs_mutex:
        found = _group_syncs.get(folder)
        if found is None:
            found = _group_syncs[folder] = GroupSync()
        return found


def _open_one(temporary: Path, lock: locks.LockFile, run_id: str) -> int:
    """Create the new run's file under its temporary name (the lock let go if it fails)."""
    try:
        return os.open(temporary, _CREATE, 0o600)
    except OSError as exc:
        lock.release(run_id)
        raise io_error(exc, temporary.parent, "cannot create a run file in") from None


def _forget_new(temporary: Path, lock: locks.LockFile | None, run_id: str) -> None:
    """Undo `_open_one` for a creation that failed or was given up."""
    with contextlib.suppress(OSError):
        temporary.unlink()
    if lock is not None:
        lock.release(run_id)


def _link_noted(temporary: Path, path: Path, refused: list[BaseException]) -> None:
    """`_link_one`, in a sync thread: what it raises is noted in ``refused`` too, so that the
    loop tells a failed link from a failed sync."""
    try:
        _link_one(temporary, path)
    except BaseException as exc:
        refused.append(exc)
        raise


def _link_one(temporary: Path, final: Path) -> None:
    """Put a new run file in place under its name; the temporary name goes either way."""
    try:
        os.link(temporary, final)  # atomic, and refuses to replace an existing run
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


#: What one call of a turn's batch came to: its value, or what it raised.
_Result = tuple[Any, BaseException | None]


def _each(function: Callable[..., Any], args: tuple[Any, ...]) -> _Result:
    try:
        return function(*args), None
    except BaseException as exc:  # that run's own failure, handed to it
        return None, exc


def _open_new(requests: list[tuple[Path, locks.LockFile, str]]) -> list[_Result]:
    """In a sync thread: `_open_one` for each run created in one turn of the loop."""
    return [_each(_open_one, request) for request in requests]


#: Threads a turn's calls are spread over, at most: an O_CREAT can take a few hundred µs of
#: kernel time here, which one thread would add up for the whole turn.
_SPREAD: Final = 4


class _TurnCalls(syncs.TurnBatch[Any, Any]):
    """The calls of one batch function (`_open_new`) asked for in one turn of a loop: handed
    to the sync pool together, a few threads' worth, and settled on the loop together. A
    call each cost the loop a pool hand-off, a thread's wake-up and a wake-up of the loop of
    its own (per run created in a crowd; a new file's link rides with its first sync:
    `HistoryWriter._sync_in_slot`)."""

    def __init__(self, function: Callable[[list[Any]], list[_Result]]) -> None:
        super().__init__()
        self._function = function

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        shares = min(len(batch), _SPREAD)
        for i in range(shares):
            share = batch[i::shares]
            future = syncs.submit(partial(self._function, [args for args, _, _ in share]))
            future.add_done_callback(partial(_settle_turn, loop, share))


def _settle_turn(
    loop: asyncio.AbstractEventLoop,
    share: list[tuple[Any, asyncio.Future[Any], syncs.ThreadDone[Any]]],
    future: Future[list[_Result]],
) -> None:
    # In the thread that made the calls (or on the loop): each call's own outcome, then one
    # wake-up of the loop for all of them.
    if future.cancelled():  # the pool was shut down before a thread took them
        outcomes: list[_Result] = [(None, asyncio.CancelledError())] * len(share)
    elif future.exception() is not None:
        outcomes = [(None, future.exception())] * len(share)
    else:
        outcomes = future.result()
    settled: list[syncs.Outcome[Any]] = []
    for (_, awaited, done), (value, exc) in zip(share, outcomes, strict=True):
        if exc is None:
            done.set_result(value)
        else:
            done.set_exception(exc)
        settled.append((awaited, value, exc))
    syncs.hand_back(loop, settled)


_turn_calls: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[Callable[[list[Any]], list[_Result]], _TurnCalls]
] = weakref.WeakKeyDictionary()


async def _aside(
    function: Callable[[list[Any]], list[_Result]],
    args: tuple[Any, ...],
    *,
    undo: Callable[[], None] | None = None,
) -> Any:
    """``function``'s call for ``args``, made in the sync pool with the others of this turn
    of the loop (`_TurnCalls`). Cancelled meanwhile, it runs to its end all the same (even
    if no thread took it yet), and ``undo`` then undoes it if it succeeded. Cancelling the
    caller cancels only the loop's future it awaits, never the thread's work."""
    loop = asyncio.get_running_loop()
    by_function = _turn_calls.get(loop)
    if by_function is None:
        by_function = _turn_calls[loop] = {}
    turn = by_function.get(function)
    if turn is None:
        turn = by_function[function] = _TurnCalls(function)
    awaited, done = turn.add(loop, args)
    try:
        return await awaited
    except asyncio.CancelledError:
        if undo is not None:
            done.add_done_callback(lambda finished: _undo_after(finished, undo))
        raise


def _undo_after(done: syncs.ThreadDone[Any], undo: Callable[[], None]) -> None:
    if not done.cancelled() and done.exception() is None:
        result = done.result()
        if isinstance(result, int):  # a descriptor nobody will use
            os.close(result)
        undo()


class LoopGroupSync:
    """`GroupSync` for the runs of one event loop: fsyncs of one folder, each shared by every
    run whose change (a new name in the folder) was made before it began, handed to the sync
    pool with the other syncs of its turn (`wfrun.local.syncs.submit_batched`).

    At most one runs at a time; a run that arrives meanwhile waits for the next, which covers
    every run that arrived by the time it begins. A failed fsync fails the run that started
    it; the others, not covered, try again.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._asked = 0
        self._done = 0
        #: Whether an fsync runs, and the futures of the runs that wait for it to end (each
        #: its own: a waiter cancelled cancels only its own, as `asyncio.shield` would
        #: have it, without shield's two futures and callbacks per waiter).
        self._running = False
        self._waiting: list[asyncio.Future[None]] = []

    async def sync(self) -> None:
        """Return once an fsync of the folder that began after this call has succeeded."""
        self._asked += 1
        mine = self._asked
        while self._done < mine:
            if self._running:
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.append(waiter)
                await waiter  # its starter reports a failure
                continue
            covers = self._asked  # every change asked for by now was made before this
            self._running = True
            try:
                await self._fsync()
                self._done = max(self._done, covers)
            finally:
                self._running = False
                waiting, self._waiting = self._waiting, []
                for waiter in waiting:
                    if not waiter.done():  # else cancelled meanwhile
                        waiter.set_result(None)

    async def _fsync(self) -> None:
        folder = self._folder
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise io_error(exc, folder, "cannot sync") from None
        awaited, done = syncs.submit_batched(fd, data_only=False)
        done.add_done_callback(lambda _: os.close(fd))  # once the thread is done with it
        try:
            await asyncio.shield(awaited)
        except OSError as exc:
            raise io_error(exc, folder, "cannot sync") from None


_loop_group_syncs: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[Path, LoopGroupSync]
] = weakref.WeakKeyDictionary()


def _loop_folder_syncs(folder: Path) -> LoopGroupSync:
    by_folder = _loop_group_syncs.setdefault(asyncio.get_running_loop(), {})
    found = by_folder.get(folder)
    if found is None:
        found = by_folder[folder] = LoopGroupSync(folder)
    return found


def _can_reserve() -> bool:
    """Whether this OS can reserve file space and sync data without the inode (not macOS)."""
    return hasattr(os, "posix_fallocate") and hasattr(os, "fdatasync")


def _forget_in_child() -> None:
    # A process forked by an activity must not hold (or, by closing, release) a run's lock:
    # the child closes its copies, and the parent's lock stays where it is.
    # The same for the locks: closed there, never unlocked (see `wfrun.local.locks`).
    global _open_files, _group_syncs_mutex
    _group_syncs.clear()  # a thread of the parent may have been syncing: none runs here
    _group_syncs_mutex = threading.Lock()
    for writer in list(_open_writers):
        if writer._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(writer._fd)
        writer._fd = -1
        writer._lock = None
    _open_writers.clear()
    _open_files = _OpenFiles()  # none open here; and the parent's mutex may have been held
    locks.forget_in_child()


_open_writers: weakref.WeakSet[HistoryWriter] = weakref.WeakSet()
os.register_at_fork(after_in_child=_forget_in_child)


class RunStore:
    """The runs under one wfrun home.

    Every run file is opened without following links and checked before it is believed: a
    regular file owned by this user, in a runs folder no one else can write to. A run file
    names the code that ``resume`` and ``replay`` import, so anything else is refused
    (`HistoryIOError`, exit 74) before anything is read, let alone imported.
    """

    #: How writers write: the fault tests put a failing one here.
    write: Callable[[int, bytearray | memoryview], int] = staticmethod(os.write)

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home, self.runs_dir, self._inbox_dir = _layout(home)

    def path(self, run_id: str) -> Path:
        return self.runs_dir / f"{validate_run_id(run_id)}.jsonl"

    def inbox_path(self, run_id: str) -> Path:
        """Where messages to the run wait (see `wfrun.local.inbox`)."""
        return self._inbox_dir / f"{validate_run_id(run_id)}.jsonl"

    @property
    def inbox_dir(self) -> Path:
        """The folder of the runs' inboxes (`inbox_path`'s)."""
        return self._inbox_dir

    # -- writing -----------------------------------------------------------------------------

    def create(
        self, started: dict[str, Any], clock: Clock
    ) -> tuple[HistoryWriter, WorkflowStarted]:
        """Create, lock and durably write a new run whose first event has ``started``'s fields.

        Raises `FileExistsError` when the run already exists (the caller decides what that
        means: resume it, or report it).
        """
        lock, temporary = self._new_name(started["run_id"])
        fd = _open_one(temporary, lock, started["run_id"])
        writer, event = self._first_event(fd, temporary, lock, started, clock)
        with self._linking(writer):
            writer.sync()
            _link_one(temporary, writer.path)
        # The new file's name must survive a crash too; runs created at once share the fsync.
        try:
            _folder_syncs(self.runs_dir).sync(partial(self.sync_folder, self.runs_dir))
        except BaseException:
            writer.close()
            raise
        return writer, event

    async def create_aside(
        self, started: dict[str, Any], clock: Clock
    ) -> tuple[HistoryWriter, WorkflowStarted]:
        """`create`, for a process with other runs live: its fsyncs go with theirs.

        The two fsyncs (the file's, then the runs folder's) are handed to the sync pool with
        every other sync of the same turn of the loop (`wfrun.local.syncs.submit_batched`),
        and the changes to the runs folder are made in a sync thread: the file is created
        with those of the other runs of the same turn (`_TurnCalls`), and linked into place
        by the thread that synced it, once it is durable (`HistoryWriter._sync_in_slot`):
        an O_CREAT can take hundreds of µs of kernel time (measured: ~1.6 ms per creation,
        the whole loop stalled meanwhile). The rest runs on the loop: every system call in a
        thread is a round trip of the GIL, which the busy loop holds (moving the lock, the
        folder check, the reservation and the first write into the thread call raised the
        futex calls per run by half). It holds a `syncs.creating` slot while its file is open:
        however many runs start at once, only so many hold a descriptor. The runs
        folder's fsync is shared by the runs linked before it began (`LoopGroupSync`).
        """
        run_id = started["run_id"]
        async with syncs.creating():
            lock, temporary = self._new_name(run_id)
            fd = await _aside(
                _open_new,
                (temporary, lock, run_id),
                undo=partial(_forget_new, temporary, lock, run_id),
            )
            writer, event = self._first_event(fd, temporary, lock, started, clock)
            try:
                with self._linking(writer):
                    await writer._sync_in_slot(linking=temporary)
            except BaseException:
                # The temporary name goes once no thread works on it: a link (made even if
                # this run was cancelled meanwhile) took it already, a failed sync did not.
                in_flight = list(writer._syncing)  # list(): the threads discard from it
                for future in in_flight:
                    future.add_done_callback(lambda _: _forget_new(temporary, None, run_id))
                if not in_flight:
                    _forget_new(temporary, None, run_id)
                writer.close()  # after the threads still syncing its descriptor or linking
                raise
        try:
            await _loop_folder_syncs(self.runs_dir).sync()
        except BaseException:
            writer.close()  # the run exists; nobody holds it (a resume carries it on)
            raise
        return writer, event

    def _new_name(self, run_id: str) -> tuple[locks.LockFile, Path]:
        """The run's lock, taken before its file exists, and a temporary name for the file.

        The lock is held for as long as the temporary name may be used (see
        `remove_stale_temporaries`, which relies on it).
        """
        folder = self._ensure_dirs()
        lock = self._lock(run_id, folder)  # before the file exists: nobody may take it meanwhile
        temporary = self.runs_dir / f".{run_id}.{os.getpid()}.{entropy.token_hex(4)}.tmp"
        return lock, temporary

    def remove_stale_temporaries(self, warn: Callable[[str], None] = lambda _: None) -> list[str]:
        """Remove the temporary files of run creations whose process is gone; their names.

        A creation writes its run's first event under ``.<run-id>.<pid>.<hex>.tmp`` and links
        it into place; a process killed in between leaves that file behind (a run's input,
        which no command shows). Its creator is known by the run's lock: taken before the
        file is created and let go only once nothing will use the name again, and dropped by
        the kernel when the process dies, however it dies. So a temporary file whose run lock
        this process can take has no creator left, and it is removed while that lock is held:
        no creation of the run can begin meanwhile. The pid in the name is not asked: pids
        are reused. A run held by a live process (being created, or executed) is left alone,
        and so is a file older than the lock file itself (removed or replaced since: a lock
        on the new one says nothing of a creator that locked the old one).

        Only names of that shape are touched, each a regular file of this user that nobody
        else can write to, in a runs folder that passes the trust checks; a link is never
        followed, and anything else is left where it is (``warn`` is told why).
        """
        try:
            self._check_folder()
        except FileNotFoundError:
            return []
        try:
            folder = os.open(self.runs_dir, os.O_RDONLY | os.O_DIRECTORY | _SAFE)
        except OSError as exc:
            raise io_error(exc, self.runs_dir, "cannot list") from None
        removed: list[str] = []
        try:
            by_run: dict[str, list[str]] = {}
            for name in sorted(os.listdir(folder)):
                run_id = _creating_run(name)
                if run_id is not None:
                    by_run.setdefault(run_id, []).append(name)
            for run_id, names in by_run.items():
                try:
                    lock = self._lock(run_id)
                except RunLockedError:
                    continue  # a live process holds the run: its files are its own business
                try:
                    since = lock.changed_ns()
                    removed += [n for n in names if self._remove_stale(folder, n, since, warn)]
                finally:
                    lock.release(run_id)
        finally:
            os.close(folder)
        return removed

    def _remove_stale(
        self, folder: int, name: str, since: int, warn: Callable[[str], None]
    ) -> bool:
        """Remove ``name`` (its run's lock held) if it is a file of ours made since the lock
        file was (``since``, ns); whether it was."""
        try:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
            if not _private(info):
                warn(f"left {self.runs_dir / name} alone: {_not_ours(info)}")
                return False
            if info.st_mtime_ns < since:
                # Older than the lock file: that was removed or replaced after its creator
                # locked the old one, so the lock held now says nothing of it. Left alone.
                return False
            os.unlink(name, dir_fd=folder)
        except FileNotFoundError:
            return False  # its creator took it away after all, before we held the lock
        except OSError as exc:
            warn(f"could not remove {self.runs_dir / name}: {exc.strerror or exc}")
            return False
        return True

    def _first_event(
        self,
        fd: int,
        temporary: Path,
        lock: locks.LockFile,
        started: dict[str, Any],
        clock: Clock,
    ) -> tuple[HistoryWriter, WorkflowStarted]:
        """A writer of the new file (under its temporary name), its first event appended."""
        run_id = started["run_id"]
        try:
            writer = HistoryWriter(
                fd, self.path(run_id), 1, clock, size=0, write=self.write, lock=lock, run_id=run_id
            )
        except BaseException:
            os.close(fd)
            _forget_new(temporary, lock, run_id)
            raise
        try:
            event = writer.append(WorkflowStarted, **started)
        except BaseException:
            writer._release()
            _forget_new(temporary, None, run_id)
            raise
        return writer, event

    @contextlib.contextmanager
    def _linking(self, writer: HistoryWriter) -> Iterator[None]:
        """Around the first sync and the link of a new run file: on any failure the writer
        lets the run go."""
        try:
            yield
        except BaseException as exc:
            # Through the writer, which forgets the descriptor: the exception's traceback keeps
            # the writer alive, and a fork meanwhile must not close the number in its child,
            # by then another file's (a subprocess's pipe, say).
            if not writer._syncing:  # else the async caller closes it after its thread
                writer._release()
            if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
                raise io_error(exc, writer.path, "cannot create") from None
            raise

    def open_for_append(self, run_id: str, clock: Clock) -> tuple[HistoryWriter, History]:
        """Lock a run for this process and read it; `RunLockedError` if another holds it."""
        path = self.path(run_id)
        fd = self._open(run_id, os.O_RDWR)
        try:
            lock = self._lock(run_id)
        except BaseException:
            os.close(fd)
            raise
        try:
            data = _read_all(fd, path)
            history = parse_history(path, data, run_id, keep_stored=False)
        except BaseException:
            os.close(fd)
            lock.release(run_id)
            raise
        end = history.intact_size + len(history.torn_tail)  # where the zeros begin, if any
        try:
            os.lseek(fd, end, os.SEEK_SET)
        except OSError as exc:
            os.close(fd)
            raise io_error(exc, path, "cannot open") from None
        writer = HistoryWriter(
            fd,
            path,
            len(history.events) + 1,
            clock,
            size=end,
            allocated=len(data),
            write=self.write,
            lock=lock,
            run_id=run_id,
        )
        return writer, history

    def _lock(self, run_id: str, folder: os.stat_result | None = None) -> locks.LockFile:
        """Take the run's lock for this process; `RunLockedError` if anyone holds it.

        ``folder``: the runs folder's status, when the caller has just checked it."""
        lock = locks.lock_file(self.runs_dir, self.open_checked, folder)

        def refusal() -> RunLockedError:
            if not os.path.lexists(self.path(run_id)):
                # Not a run yet: another process is creating it, or `resume --all` is
                # removing what a killed creation of it left (a moment's work).
                return RunLockedError(
                    f"run {run_id} is being created by another live process, or what a killed "
                    f"creation of it left is being removed (it is locked in {lock.path}); "
                    "try again in a moment"
                )
            return RunLockedError(
                f"run {run_id} is being executed by another live process (it is locked in "
                f"{lock.path}); wait for it to finish, or stop that process"
            )

        lock.acquire(run_id, refusal)
        return lock

    # -- reading -----------------------------------------------------------------------------

    def read(self, run_id: str, *, keep_stored: bool = True, keep_starts: bool = True) -> History:
        """Read and check a run's history without locking it (a torn tail is reported only).

        ``keep_stored``, ``keep_starts``: see `parse_history`.
        """
        path = self.path(run_id)
        fd = self._open(run_id, os.O_RDONLY)
        try:
            data = _read_all(fd, path)
        finally:
            os.close(fd)
        return parse_history(path, data, run_id, keep_stored=keep_stored, keep_starts=keep_starts)

    def stream(self, run_id: str) -> HistoryStream:
        """A run's history read one checked event at a time, without locking it (see
        `HistoryStream`); for long histories that are only shown."""
        return HistoryStream(
            self.path(run_id), self._open(run_id, os.O_RDONLY), run_id, io_error=io_error
        )

    def read_from(self, path: Path, offset: int) -> bytes:
        """What a run file holds past ``offset`` (for following a live run), checked as every
        read is."""
        return self._read_past(self.open_checked(path, os.O_RDONLY), path, offset)

    def read_in(self, folder: Path, name: str, offset: int) -> bytes:
        """`read_from` of the file ``name`` in ``folder`` (a folder of this home): its path is
        made only if the folder is there (most runs' inboxes are looked at, few exist)."""
        self._check_folder(folder)
        path = folder / name
        return self._read_past(_checked(_open_file(path, os.O_RDONLY), path), path, offset)

    def _read_past(self, fd: int, path: Path, offset: int) -> bytes:
        """What ``fd``, opened by `read_from` or `read_in`, holds past ``offset``; closed."""
        try:
            size = _content_end(fd, os.fstat(fd).st_size)  # not the zeros reserved past it
            return os.pread(fd, size - offset, offset) if size > offset else b""
        except OSError as exc:
            raise io_error(exc, path, "cannot read") from None
        finally:
            os.close(fd)

    def is_locked(self, run_id: str) -> bool:
        """Whether a live process (this one included) holds the run."""
        self.path(run_id)  # a valid id, or InvalidRunIdError
        return self._lock_query()(run_id)

    def _lock_query(self) -> Callable[[str], bool]:
        """Whether a live process holds a run of this home, asked of its lock file."""
        try:
            lock = locks.lock_file(self.runs_dir, self.open_checked)
        except (OSError, WfrunError):  # no runs folder, or one not to be believed: nobody
            return lambda _: False

        def held(run_id: str) -> bool:
            try:
                return lock.is_held(run_id)
            except (OSError, WfrunError):
                return False

        return held

    def status(self, history: History) -> RunStatus:
        """What the last event says (`RunStatus.after`), or RUNNING while a process holds an
        unfinished run."""
        return self._unfinished(history.started.run_id, history.events[-1])

    def _unfinished(self, run_id: str, last: Event) -> RunStatus:
        if last.role != TERMINAL and self.is_locked(run_id):
            return RunStatus.RUNNING
        return RunStatus.after(last)

    def list_runs(self, warn: Callable[[str], None] = lambda _: None) -> list[RunInfo]:
        """Every run, oldest first, read from the first and last lines of each file.

        A damaged file is listed with status ``DAMAGED`` and the problem, rather than hidden;
        what is not a run file of this user (a folder, a link, someone else's file, a name that
        is no run id) is skipped, and ``warn`` is told why.
        """
        names = self._file_names(warn)  # checks the folder
        if not names:
            return []
        # Each file is opened relative to the folder, checked once: no path to build and no
        # folder to check again per run, which was most of what listing cost.
        try:
            folder = os.open(self.runs_dir, os.O_RDONLY | os.O_DIRECTORY | _SAFE)
        except OSError as exc:
            raise io_error(exc, self.runs_dir, "cannot list") from None
        infos = []
        try:
            index = ListIndex(folder)
            held = self._lock_query()  # the home's lock file, found once for every run
            for name in names:
                try:
                    infos.append(self._listed(name, folder, index, held))
                except (HistoryIOError, RunNotFoundError) as exc:
                    warn(f"skipped {self.runs_dir / name}: {exc}")
            index.save()
        finally:
            os.close(folder)
        return sorted(infos, key=lambda info: info.started)

    def _listed(
        self, name: str, folder: int, index: ListIndex, held: Callable[[str], bool]
    ) -> RunInfo:
        """A run's line of the listing: its ends from the index when its file is unchanged,
        else read from the file (and remembered); its lock asked of the home's lock file."""
        run_id = name.removesuffix(".jsonl")
        try:
            fd = os.open(name, os.O_RDONLY | _SAFE, dir_fd=folder)
        except OSError:  # again, to say why as `open_checked` says it
            try:
                fd = _open_file(self.runs_dir / name, os.O_RDONLY, folder)
            except FileNotFoundError:
                raise self._not_found(run_id) from None
        try:
            info = os.fstat(fd)
            if not _private(info):  # refused, and said why, as every read is
                os.close(_checked(os.dup(fd), self.runs_dir / name))
            ends = index.get(name, info)
            if ends is None:
                try:
                    ends = _read_ends(fd, self.runs_dir / name)
                except HistoryCorruptError as exc:  # shown, and read again next time
                    return RunInfo(run_id, "?", RunStatus.DAMAGED, "", None, str(exc))
                index.put(name, info, ends)
            locked = ends.ended is None and held(run_id)
        except OSError as exc:
            raise io_error(exc, self.runs_dir / name, "cannot read") from None
        finally:
            os.close(fd)
        return self._info(run_id, ends, locked)

    def _file_names(self, warn: Callable[[str], None]) -> list[str]:
        try:
            self._check_folder()
            names = os.listdir(self.runs_dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise io_error(exc, self.runs_dir, "cannot list") from None
        found = []
        for name in sorted(names):
            if name.startswith(".") or not name.endswith(".jsonl"):
                continue
            try:
                validate_run_id(name.removesuffix(".jsonl"))
            except InvalidRunIdError:
                warn(f"skipped {self.runs_dir / name}: its name is not a run id")
                continue
            found.append(name)
        return found

    def _ends(self, run_id: str) -> tuple[RunEnds, bool]:
        """What a run's first and last events say, and whether a live process holds it (asked
        only when the last event does not end the run)."""
        fd = self._open(run_id, os.O_RDONLY)
        try:
            ends = _read_ends(fd, self.path(run_id))
        finally:
            os.close(fd)
        return ends, ends.ended is None and self.is_locked(run_id)

    def _unblocked(self, child: str | None) -> bool:
        """Whether the child that blocked its parent is neither BLOCKED nor running now."""
        if child is None:
            return False
        try:
            ends, locked = self._ends(child)
        except WfrunError:  # gone or damaged: nothing to carry on
            return False
        status = RunStatus.RUNNING if locked else ends.status
        return status not in (RunStatus.BLOCKED, RunStatus.RUNNING)

    def info(self, run_id: str) -> RunInfo:
        """A run's line of ``wfrun list``, read from its first and last events only."""
        return self._info(run_id, *self._ends(run_id))

    def _info(self, run_id: str, ends: RunEnds, locked: bool) -> RunInfo:
        info = partial(
            RunInfo, run_id, ends.workflow, started=ends.started, ended=None, parent=ends.parent
        )
        if ends.successor is not None:
            missing = not self.path(ends.successor).exists()
            return info(ends.status, ended=ends.ended, successor_missing=missing)
        if ends.ended is not None:
            return info(ends.status, ended=ends.ended)
        status = RunStatus.RUNNING if locked else ends.status
        if status is RunStatus.BLOCKED:
            now = fingerprint(target_file(ends.target, ends.cwd))
            changed = now is not None and now != ends.code
            return info(status, code_changed=changed, unblocked=self._unblocked(ends.child))
        if status is not RunStatus.WAITING:
            return info(status)
        unread = self._inbox_size(run_id) > ends.inbox
        return info(status, due=ends.until, messages=unread)

    def _inbox_size(self, run_id: str) -> int:
        try:
            return os.stat(self.inbox_path(run_id)).st_size
        except OSError:
            return 0

    # -- trust and errors --------------------------------------------------------------------

    def _open(self, run_id: str, flags: int) -> int:
        """Open a run file that is safe to believe: see the class docstring."""
        try:
            return self.open_checked(self.path(run_id), flags)
        except FileNotFoundError:
            raise self._not_found(run_id) from None

    def open_checked(self, path: Path, flags: int, folder: Path | None = None) -> int:
        """Open a file of this home that is safe to believe (`FileNotFoundError` if none).

        ``folder``: ``path.parent``, when the caller has it at hand."""
        self._check_folder(folder or path.parent)
        return _checked(_open_file(path, flags), path)

    def _check_folder(self, folder: Path | None = None) -> os.stat_result:
        """A folder of this home must be this user's, and nobody else may write to it (its
        status, as checked, is returned)."""
        folder = folder or self.runs_dir
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise io_error(exc, folder, "cannot read") from None
        if not stat.S_ISDIR(info.st_mode):
            raise _untrusted(folder, f"it is {_kind(info.st_mode)}, not a folder")
        _refuse_unless_private(folder, info, f"`chmod 700 {folder}` if you trust every file in it")
        return info

    def ensure_folder(self, folder: Path) -> os.stat_result:
        """Create a folder of this home (0700) if need be, durably, and check it (its status,
        as checked, is returned)."""
        try:  # there already: one lstat, not three
            return self._check_folder(folder)
        except FileNotFoundError:
            pass
        created = []
        try:
            for each in (self.home, folder):
                if not each.is_dir():
                    each.mkdir(mode=0o700, parents=True, exist_ok=True)
                    each.chmod(0o700)
                    created.append(each)
        except OSError as exc:
            raise io_error(exc, folder, "cannot create") from None
        for each in created:  # a new folder's name is in its parent, which fsync(2) skips
            self.sync_folder(each.parent)
        return self._check_folder(folder)

    def _not_found(self, run_id: str) -> RunNotFoundError:
        return RunNotFoundError(
            f"no run {run_id!r} under {self.home} (looked for {self.path(run_id)}); "
            "`wfrun list` shows the runs there, --home or WFRUN_HOME picks another home"
        )

    def _ensure_dirs(self) -> os.stat_result:
        return self.ensure_folder(self.runs_dir)

    def sync_folder(self, folder: Path) -> None:
        """Make the names in ``folder`` durable: a new file's fsync covers its contents, not
        the folder entry that names it (fsync(2))."""
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise io_error(exc, folder, "cannot sync") from None


def _layout(home: str | os.PathLike[str] | None) -> tuple[Path, Path, Path]:
    """A home's folder, its runs folder and its inbox folder (see `settings.home`).

    The same three objects for the same home, as long as it is named the same way (the
    given path's text, else ``$WFRUN_HOME``'s, read each time): a path object built per run
    was three parses of the path, and a path asked again for its text or its hash (a dict
    key) computes it once per object."""
    text = settings.home_text(home)
    found = _layouts.get(text)
    if found is None:
        root = Path(text)  # as `settings.home` makes it
        found = (root, root / "runs", root / "inbox")
        if len(_layouts) >= _LAYOUTS_KEPT:  # many temporary homes (tests): keep it small
            _layouts.clear()
        _layouts[text] = found
    return found


#: `_layout`'s by the home's text (the default, ``.wfrun``, stays relative: it is resolved
#: where the process is when the path is used, as it always was).
_layouts: dict[str, tuple[Path, Path, Path]] = {}
_LAYOUTS_KEPT: Final = 64


#: Never follow a link (a planted one could point anywhere), never block on a FIFO, never
#: leak the descriptor into a program an activity starts.
_SAFE: Final = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE: Final = os.O_RDWR | os.O_CREAT | os.O_EXCL | _SAFE

_REASONS: Final = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "the file is too large (a file size limit, e.g. ulimit -f)",
    errno.EIO: "an I/O error (a failing disk?)",
    errno.EISDIR: "it is a folder",
}


#: The temporary name of a run file being created (`RunStore._new_name`).
_TEMPORARY: Final = re.compile(r"\.(?P<run_id>.+)\.[0-9]+\.[0-9a-f]{8}\.tmp")


def _creating_run(name: str) -> str | None:
    """The run whose creation ``name`` is the temporary file of, if it is one."""
    found = _TEMPORARY.fullmatch(name)
    if found is None or not is_run_id(found["run_id"]):
        return None
    return found["run_id"]


def _not_ours(info: os.stat_result) -> str:
    if not stat.S_ISREG(info.st_mode):
        return f"it is {_kind(info.st_mode)}"
    if info.st_uid != os.geteuid():
        return "it belongs to another user"
    return "others may write to it"


def io_error(exc: OSError, path: Path, doing: str) -> HistoryIOError:
    """A `HistoryIOError` saying what failed, where, and that the run can go on later."""
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    return HistoryIOError(
        f"{doing} {path}: {reason} ({errno.errorcode.get(exc.errno or 0, 'error')}). What was "
        "recorded before is intact: fix the cause, then `wfrun resume` carries the run on",
        path=str(path),
    )


def _untrusted(path: Path, why: str) -> HistoryIOError:
    return HistoryIOError(
        f"refusing {path}: {why}. A run file names code to import, so wfrun reads only regular "
        "files of your own in a folder only you can write to; nothing was read or imported",
        path=str(path),
    )


def _open_file(path: Path, flags: int, folder: int | None = None) -> int:
    """Open without following a link; by name in ``folder`` (a descriptor) when given."""
    try:
        if folder is None:
            return os.open(path, flags | _SAFE, 0o600)
        return os.open(path.name, flags | _SAFE, 0o600, dir_fd=folder)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _untrusted(path, "it is a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise _untrusted(path, "it is a folder, not a regular file") from None
        raise io_error(exc, path, "cannot open") from None


def _checked(fd: int, path: Path) -> int:
    """``fd`` if it is a regular file of this user that others cannot write to; else it is
    closed and the refusal raised."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _untrusted(path, f"it is {_kind(info.st_mode)}, not a regular file")
        _refuse_unless_private(path, info, f"`chmod 600 {path}` if you trust it")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_unless_private(path: Path, info: os.stat_result, advice: str) -> None:
    """Refuse a file or folder of another user, or one that others may write to (what
    someone else could have written is never believed: SPEC section 3)."""
    if info.st_uid != os.geteuid():
        raise _untrusted(path, f"it belongs to user id {info.st_uid}, not to you")
    if info.st_mode & 0o022:
        mode = stat.S_IMODE(info.st_mode)
        raise _untrusted(path, f"others can write to it (mode {mode:o}); {advice}")


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a device",
        stat.S_ISBLK: "a device",
        stat.S_ISSOCK: "a socket",
        stat.S_ISLNK: "a symbolic link",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def _read_all(fd: int, path: Path) -> bytes:
    try:
        size = os.fstat(fd).st_size
        chunks: list[bytes] = []
        offset = 0
        while True:  # read to the real end: the file may have grown since fstat
            chunk = os.pread(fd, max(size - offset, 1 << 16), offset)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            offset += len(chunk)
    except OSError as exc:
        raise io_error(exc, path, "cannot read") from None


def _read_ends(fd: int, path: Path) -> RunEnds:
    """What a run file's first and last events say (`HistoryCorruptError` if they are not
    events)."""
    first, last = _first_and_last_lines(fd, path)
    started = parse_started(path, first)
    return RunEnds.of(started, parse_line(path, 0, last, checksummed=started.format >= CHECKSUMMED))


def _first_and_last_lines(fd: int, path: Path) -> tuple[bytes, bytes]:
    """The first and the last complete lines, reading only the two ends of the file."""
    try:
        size = _content_end(fd, os.fstat(fd).st_size)
        head = os.pread(fd, min(size, 1 << 16), 0)
        end_of_first = head.find(b"\n")
        block = 1 << 16
        while end_of_first < 0 and len(head) < size:
            head = os.pread(fd, min(size, len(head) + block), 0)
            end_of_first = head.find(b"\n")
            block *= 4
        if end_of_first < 0:
            raise HistoryCorruptError(
                f"{path}:1: the file holds no complete event", path=str(path), line=1
            )
        block = 4096
        while True:
            start = max(0, size - block)
            tail = os.pread(fd, size - start, start)
            end = tail.rfind(b"\n")  # whatever follows is a torn tail, not an event
            begin = tail.rfind(b"\n", 0, end) + 1
            if begin > 0 or start == 0:
                return head[:end_of_first], tail[begin:end]
            block *= 4
    except OSError as exc:
        raise io_error(exc, path, "cannot read") from None


def _content_end(fd: int, size: int) -> int:
    """Where the zeros that end a file of ``size`` bytes begin, reading back from its end.

    A writer trimming the file meanwhile only makes reads come back short: the scan goes on
    before them, to the end of what was written.
    """
    end = size
    block = 4096
    while end > 0:
        start = max(0, end - block)
        kept = len(os.pread(fd, end - start, start).rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
        block = min(block * 4, 1 << 20)
    return 0
