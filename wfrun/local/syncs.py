"""Where a run's fsyncs run: on the event loop while it is alone, in a thread pool when it is not.

An fsync blocks its thread for the disk's flush (~100-300 µs on an SSD, milliseconds on a
busy one). With one live run in the process nothing else could use that time, and a thread
hop (~50 µs, and a wake-up of the loop) would only slow the run down: the run syncs inline.
With several, an inline fsync stalls every other run behind it, and their fsyncs are
serialised one after another. So while more than one run is live, `sync` writes on the loop
(a write only copies to the page cache) and hands the fsync to a pool of threads: the runs go
on meanwhile, and fsyncs of different files that overlap in time are committed together by
the file system (ext4 merges them into one journal commit), which is where the throughput of
many runs at once comes from (`bench/concurrent_runs.py` measures both floors).

The fsyncs asked for in one turn of the loop are handed over together (`submit_batched`), and
from `AIO_FROM` of them on, one thread gives them all to the kernel in one ``io_submit``
(Linux native AIO, `wfrun.local.aio`) and waits for all of them at once: a thread per fsync
cost a wait for the GIL each time one returned, and the busy loop thread as many waits for it
back (measured with 200 runs live: ~15,000 context switches a round, ~20 futex calls per
fsync; with the submission, a tenth of the switches). Elsewhere, or for a few, the threads
sync one file each as before.

The same count decides when a run keeps its history file open between writes (see
`wfrun.local.store.HistoryWriter`): alone, it keeps it (an open per step would cost the single
run ~10 µs); in company it keeps it only while the process holds few enough of them
(`wfrun.local.store.keep_open`), else opens it only to write and to sync, and at most
`SYNC_SLOTS` runs of a loop open it for a sync at once (a file kept open needs no slot; the
thread is handed the descriptor itself: an fsync through a fresh one would cost three more
syscalls, each a wait for the GIL that the busy loop thread holds). So the number of runs
is not bounded by the limit on open files. Runs being created hold a slot of their own
(`CREATE_SLOTS`), so a crowd of new runs never keeps the live ones from their syncs (see
`wfrun.local.store.RunStore.create_aside`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from . import aio

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")
#: A future a run awaits on its loop, and what to settle it with: a value, or what was raised.
Outcome = tuple["asyncio.Future[R]", R, BaseException | None]


class Pending(Protocol):
    """Work a thread does that nobody can stop, as `HistoryWriter.close` waits for it: a
    `concurrent.futures.Future`, or a `ThreadDone`."""

    def done(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...


_log = logging.getLogger(__name__)

#: The one lock of every `ThreadDone`.
_done_mutex = threading.Lock()


class ThreadDone(Generic[R]):
    """Done once a sync thread is done with one request of a batch (and with its descriptor),
    whatever became of the task that awaited it: the part of a `concurrent.futures.Future`
    that is used here.

    Nobody blocks on one (the run awaits a future of its loop; `HistoryWriter.close` waits
    with a callback), so it needs no Condition of its own: making one (an RLock and its
    bound methods) for every sync of a crowded step cost about 2 µs. One lock, shared by
    all of them, orders a callback added on the loop against the thread setting the outcome.
    """

    __slots__ = ("_callbacks", "_done", "_exception", "_result")

    def __init__(self) -> None:
        self._done = False
        self._result: R | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[ThreadDone[R]], object]] = []

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        """Always False: a thread's work is never cancelled (see `submit`)."""
        return False

    def result(self) -> R | None:
        """What the work returned (only once `done`); raises what it raised."""
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> BaseException | None:
        return self._exception

    def add_done_callback(self, fn: Callable[[ThreadDone[R]], object], /) -> None:
        """Call ``fn(self)`` once done: at once if it is, else in the thread that makes it."""
        with _done_mutex:
            if not self._done:
                self._callbacks.append(fn)
                return
        try:  # as in `_finish`
            fn(self)
        except Exception:
            _log.exception("exception calling callback for %r", self)

    def set_result(self, value: R) -> None:
        self._result = value
        self._finish()

    def set_exception(self, exc: BaseException) -> None:
        self._exception = exc
        self._finish()

    def _finish(self) -> None:
        with _done_mutex:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            # As `concurrent.futures.Future` does: logged, never raised into the thread that
            # settles, which has the other runs of its batch to hand back (else they would
            # wait forever). A try costs nothing until it catches.
            try:
                fn(self)
            except Exception:
                _log.exception("exception calling callback for %r", self)


#: Threads that fsync for the runs of this process. More overlap lets the journal merge
#: more commits; beyond ~16 this machine's disk gains nothing (measured: 1 thread ~500
#: syncs/s under load, 8 ~5,300, 16 ~7,800, 32-64 ~6,600-6,800).
SYNC_THREADS: Final = 16

_live = 0
_mutex = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def live_run() -> contextlib.AbstractContextManager[None]:
    """Count a run as live in this process for as long as the block runs."""
    return _LIVE_RUN


class _LiveRun:
    """`live_run`'s context manager: one for all (it holds no state of its own), and a
    class, not a generator's, as every run enters it."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _live
        with _mutex:
            _live += 1

    def __exit__(self, *_: object) -> None:
        global _live
        with _mutex:
            _live -= 1


_LIVE_RUN: Final = _LiveRun()


def crowded() -> bool:
    """Whether more than one run is live in this process now."""
    return _live > 1


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _mutex:
        if _pool is None:
            _pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="wfrun sync")
        return _pool


#: Runs that may hold their history open for a sync at once (per event loop): enough to keep
#: every sync thread busy with a queue behind it, few enough for any limit on open files.
SYNC_SLOTS: Final = 4 * SYNC_THREADS


class Slots:
    """A semaphore of one event loop, first come first served, whose every step is O(1).

    Why not `asyncio.Semaphore`: on Python 3.11 its ``acquire`` asks ``locked()``, which
    scans every waiter; with hundreds of runs waiting for a slot, each sync cost a scan of
    all of them (quadratic in the number of live runs). Here a released slot is handed
    straight to the first waiter still waiting.
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take(self) -> bool:
        """Take a slot if one is free and nobody waits for one (no coroutine to make: a
        crowded run asks at every step); False: `wait` for one."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def __aenter__(self) -> None:
        if not self.take():
            await self.wait()

    async def wait(self) -> None:
        """Wait for a slot, after `take` found none: handed one by `release`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot, too late: pass it on
                self.release()
            raise

    async def __aexit__(self, *_: object) -> None:
        self.release()

    def release(self) -> None:
        """Give a slot back: to the first waiter still waiting, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled one gave up its place
                waiter.set_result(None)
                return
        self._free += 1


class PerLoop(Generic[T]):
    """One ``make()`` per event loop, made at its first use there and let go with the loop.

    The loop that asked last is remembered (weakly): a crowded process asks at every step of
    every run, nearly always from the same loop, and a `weakref.WeakKeyDictionary` lookup
    makes a weak reference each time."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], T] | None = None

    def get(self, loop: asyncio.AbstractEventLoop) -> T:
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        found = self._by_loop.get(loop)
        if found is None:
            found = self._by_loop[loop] = self._make()
        self._last = (weakref.ref(loop), found)
        return found


_slots: PerLoop[Slots] = PerLoop(lambda: Slots(SYNC_SLOTS))


def slot() -> Slots:
    """The slots a run holds one of while its history is open for a sync (on this loop)."""
    return _slots.get(asyncio.get_running_loop())


#: Runs of a loop that may be being created at once (each holds its new file open): as many
#: as there are sync threads, as when each was created in one. Apart from `SYNC_SLOTS`, so
#: that a crowd of runs starting never keeps the live ones from their syncs.
CREATE_SLOTS: Final = SYNC_THREADS

_creating: PerLoop[Slots] = PerLoop(lambda: Slots(CREATE_SLOTS))


def creating() -> Slots:
    """The slots a run holds one of while it is being created (on this loop)."""
    return _creating.get(asyncio.get_running_loop())


def submit(function: Callable[[], T]) -> Future[T]:
    """Run ``function()`` in the sync pool.

    An fsync cannot be stopped: cancelling the caller leaves it running to its end, and
    whoever owns the descriptor must not close it before (`HistoryWriter.close` waits).
    """
    return _executor().submit(function)


def submit_batched(
    fd: int, *, data_only: bool, then: Callable[[], None] | None = None
) -> tuple[asyncio.Future[None], ThreadDone[None]]:
    """fsync ``fd`` in the sync pool (fdatasync where ``data_only``), then call ``then()``
    there, handed over with every other one asked for in the same turn of this loop (a
    group commit across runs).

    Returns the future to await on the loop, and the thread's own (done once the thread is
    done with ``fd``, whatever happened to the awaiting task meanwhile: see `submit`).
    One hand-off per turn of the loop, one wake-up of the loop per hand-off, instead of a
    task for the pool, a chained future and a wake-up per run. A turn's syncs go to the
    kernel in one call where it can take them (`wfrun.local.aio`, from `AIO_FROM` of them
    on), else spread over the pool's threads.
    """
    loop = asyncio.get_running_loop()
    return _batches.get(loop).add(loop, _Sync(fd, data_only, then))


#: Syncs of one turn from which on they go to the kernel at once (`wfrun.local.aio`) rather
#: than a thread each: a handful of runs keep the plain calls, whose thread hops cost them
#: little (few threads wait for the GIL).
AIO_FROM: Final = 4


@dataclass(slots=True)  # not frozen: its __init__ would set each field through object's
class _Sync:
    fd: int
    data_only: bool
    then: Callable[[], None] | None

    def plainly(self) -> None:
        (os.fdatasync if self.data_only else os.fsync)(self.fd)


class TurnBatch(Generic[A, R]):
    """What one loop's runs asked the sync pool for in one turn of the loop: each request,
    the future its run awaits on the loop, and the thread's own (done once the work is,
    whatever became of the awaiting task). `_hand_over` gives the turn's requests to the
    pool once the turn ends: a hand-off, a thread's wake-up and a wake-up of the loop for
    all of them, not one each."""

    # It holds no reference to its loop (the registry's key): a finished loop is let go.
    def __init__(self) -> None:
        self._pending: list[tuple[A, asyncio.Future[R], ThreadDone[R]]] = []

    def add(
        self, loop: asyncio.AbstractEventLoop, request: A
    ) -> tuple[asyncio.Future[R], ThreadDone[R]]:
        awaited: asyncio.Future[R] = loop.create_future()
        done: ThreadDone[R] = ThreadDone()
        if not self._pending:  # the first of this turn: hand them all over once it ends
            loop.call_soon(self._hand_over, loop)
        self._pending.append((request, awaited, done))
        return awaited, done

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        raise NotImplementedError


#: One sync for the pool, the future its run awaits, and the thread's own.
_Item = tuple[_Sync, "asyncio.Future[None]", ThreadDone[None]]


class _Batch(TurnBatch[_Sync, None]):
    """The fsyncs of one turn: at once through native AIO, or spread over the threads."""

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        executor = _executor()
        if len(batch) >= AIO_FROM and _aio_available():
            executor.submit(_run_at_once, loop, batch)
            return
        # Spread over the threads, so that the disk merges the syncs that overlap in time.
        shares = min(len(batch), SYNC_THREADS)
        for i in range(shares):
            executor.submit(_run, loop, batch[i::shares])


def _aio() -> ModuleType:
    # Imported once a crowd needs it: ctypes and its structures cost ~5 ms, which the reading
    # commands (`list`, `history`), importing this module, never need.
    from . import aio

    return aio


def flight() -> aio.Flight | None:
    """A lone run's way to sync while it works on (`wfrun.local.aio.Flight`); None where
    there is none (not Linux, no native AIO, a Python without ctypes)."""
    try:
        module = _aio()
    except ImportError:
        return None
    return module.Flight() if module.available() else None


def _aio_available() -> bool:
    try:
        return bool(_aio().available())
    except ImportError:  # a Python without _ctypes
        return False


def _run(loop: asyncio.AbstractEventLoop, share: list[_Item]) -> None:
    # In a sync thread: each in turn, then one wake-up of the loop for all of them.
    _finish(loop, share, [None] * len(share))


def _run_at_once(loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
    # In a sync thread: every sync of the batch in one go, then the rest of each in turn.
    try:
        synced = _aio().fsync_all([(sync.fd, sync.data_only) for sync, _, _ in batch])
    except BaseException:  # outcome unknown: every run of the batch fails, resumably
        synced = [errno.EIO] * len(batch)
    _finish(loop, batch, synced or [None] * len(batch))


def _finish(loop: asyncio.AbstractEventLoop, items: list[_Item], synced: list[int | None]) -> None:
    """Sync what ``synced`` says is not synced yet (None) and settle, then run the ``then``
    of the others (a run's last sync trims its file: a system call and a wait for the GIL
    each) and settle those: the runs of the batch that go on do not wait for those that end."""
    now: list[Outcome[None]] = []
    later: list[_Item] = []
    for item, code in zip(items, synced, strict=True):
        sync, awaited, done = item
        try:
            if code is None:
                sync.plainly()
            elif code:
                raise OSError(code, os.strerror(code))
        except BaseException as exc:  # handed to the awaiting run, which decides
            now.append((awaited, None, exc))
            done.set_exception(exc)
            continue
        if sync.then is not None:
            later.append(item)
            continue
        now.append((awaited, None, None))
        done.set_result(None)
    if now:
        hand_back(loop, now)
    if not later:
        return
    outcomes: list[Outcome[None]] = []
    for sync, awaited, done in later:
        try:
            assert sync.then is not None
            sync.then()
        except BaseException as exc:  # handed to the awaiting run, which decides
            outcomes.append((awaited, None, exc))
            done.set_exception(exc)
        else:
            outcomes.append((awaited, None, None))
            done.set_result(None)
    hand_back(loop, outcomes)


def hand_back(loop: asyncio.AbstractEventLoop, outcomes: list[Outcome[R]]) -> None:
    """From a pool thread: settle on ``loop`` the futures its runs await, in one wake-up."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits them
        loop.call_soon_threadsafe(_settle, outcomes)


def _settle(outcomes: list[Outcome[R]]) -> None:
    for awaited, value, exc in outcomes:
        if awaited.done():  # its run was cancelled meanwhile
            continue
        if exc is None:
            awaited.set_result(value)
        else:
            awaited.set_exception(exc)


_batches: PerLoop[_Batch] = PerLoop(_Batch)


def _forget_in_child() -> None:
    # A forked child has none of the pool's threads: it would wait forever on a dead queue,
    # or on a lock one of them held at the fork (every `ThreadDone` takes the same one).
    global _pool, _mutex, _done_mutex
    _pool = None
    _mutex = threading.Lock()
    _done_mutex = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
