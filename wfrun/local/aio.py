"""Many fsyncs in two system calls: Linux native AIO (``IOCB_CMD_FDSYNC``) through ctypes.

Why: with hundreds of runs live in one process, each step ends in an fdatasync of the run's
own file. Issued one per thread, every one of them costs the sync thread a wait for the GIL
when it returns, and the busy event loop thread a wait for it back (measured: ~60-85 µs of
CPU per durable append, most of it futex calls, against ~5-10 µs here; see
`bench/concurrent_runs.py`). ``io_submit`` hands the kernel every fsync of a turn of the loop
at once; the kernel runs them side by side (ext4 merges them into one journal commit, as it
does for threads), and ``io_getevents`` waits for all of them with the GIL released once.

What each one does is exactly what ``fdatasync(2)`` (or ``fsync(2)``) does: the kernel's AIO
fsync calls ``vfs_fsync`` on the file, and its result is that call's, reported per file, so
a failed sync fails its own run only and says why (unlike ``syncfs``, which flushes every
file of the file system and reports errors poorly).

Where there is no such thing (not Linux, a kernel before 4.18, a seccomp filter, the
system-wide ``fs.aio-max-nr`` exhausted), `fsync_all` says so and the caller syncs each file
the plain way, in threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

#: ``io_setup``, ``io_getevents``, ``io_submit`` and ``io_destroy`` where wfrun knows their
#: numbers.
_NUMBERS: Final = {"x86_64": (206, 208, 209, 207), "aarch64": (0, 4, 2, 1)}
_FSYNC: Final = 2
_FDSYNC: Final = 3
#: The most fsyncs one context has in flight (its size, given to ``io_setup``).
DEPTH: Final = 256


class _Iocb(ctypes.Structure):
    """``struct iocb`` (linux/aio_abi.h), little-endian layout (both architectures above)."""

    _fields_ = (
        ("data", ctypes.c_uint64),
        ("key", ctypes.c_uint32),
        ("rw_flags", ctypes.c_int32),
        ("opcode", ctypes.c_uint16),
        ("reqprio", ctypes.c_int16),
        ("fildes", ctypes.c_uint32),
        ("buf", ctypes.c_uint64),
        ("nbytes", ctypes.c_uint64),
        ("offset", ctypes.c_int64),
        ("reserved2", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("resfd", ctypes.c_uint32),
    )


class _Event(ctypes.Structure):
    """``struct io_event``: which request (``data``), and its result (``-errno`` or 0)."""

    _fields_ = (
        ("data", ctypes.c_uint64),
        ("obj", ctypes.c_uint64),
        ("res", ctypes.c_int64),
        ("res2", ctypes.c_int64),
    )


class _Kernel:
    """The four system calls, or None where this platform has no known numbers."""

    def __init__(self) -> None:
        numbers = _NUMBERS.get(platform.machine()) if sys.platform == "linux" else None
        if numbers is None or sys.byteorder != "little":
            raise OSError(errno.ENOSYS, "no native AIO here")
        self.setup, self.getevents, self.submit, self.destroy = numbers
        # CDLL releases the GIL around each call: io_getevents waits without holding it.
        self.syscall = ctypes.CDLL(None, use_errno=True).syscall
        self.syscall.restype = ctypes.c_long

    def call(self, *args: object) -> int:
        result: int = self.syscall(*args)
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return result


_PENDING: Final = -1
#: The fields of an `_Iocb` a sync sets (data, key, rw_flags, opcode, reqprio, fildes), as
#: it lays them out: one call fills them.
_IOCB_HEAD: Final = struct.Struct("<QIiHhI")
_IOCB_SIZE: Final = ctypes.sizeof(_Iocb)
#: An `_Event` as it lays it out: the results of a batch read in one call.
_EVENT: Final = struct.Struct("<QQqq")


class _Unreaped(OSError):
    """io_getevents failed after io_submit: ``results`` as far as they are known."""

    def __init__(self, results: list[int | None]) -> None:
        super().__init__(errno.EIO, "io_getevents failed")
        self.results = results


class _Context:
    """One AIO context: used by one thread at a time (see `_take`)."""

    def __init__(self, kernel: _Kernel) -> None:
        self._kernel = kernel
        self._id = ctypes.c_ulong(0)
        kernel.call(ctypes.c_long(kernel.setup), ctypes.c_uint(DEPTH), ctypes.byref(self._id))
        # Made once, used by every `sync` on this context: building a structure, and a
        # pointer to it, per request and per batch cost more than the system calls.
        self._iocbs = (_Iocb * DEPTH)()
        first = ctypes.addressof(self._iocbs)
        addresses = range(first, first + DEPTH * _IOCB_SIZE, _IOCB_SIZE)
        self._pointers = (ctypes.c_void_p * DEPTH)(*addresses)
        self._events = (_Event * DEPTH)()

    def destroy(self) -> None:
        """Hand the context back to the kernel, once it cannot be used again (its events
        linger after a failed ``io_getevents``): else it counts against the system-wide
        ``fs.aio-max-nr`` for as long as this process lives. ``io_destroy`` waits for what
        is still in flight on it first."""
        kernel = self._kernel
        with contextlib.suppress(OSError):  # nothing more to do with it either way
            kernel.call(ctypes.c_long(kernel.destroy), self._id)

    def sync(self, requests: Sequence[tuple[int, bool]]) -> list[int | None]:
        """Sync ``requests`` (at most `DEPTH`); per request 0, an errno, or None if the kernel
        did not take it (see `fsync_all`)."""
        kernel, count = self._kernel, len(requests)
        iocbs, pointers, pack = self._iocbs, self._pointers, _IOCB_HEAD.pack_into
        for i, (fd, data_only) in enumerate(requests):
            # Its number, the kind of sync, the file; every other field stays zero.
            pack(iocbs, i * _IOCB_SIZE, i, 0, 0, _FDSYNC if data_only else _FSYNC, 0, fd)
        results: list[int | None] = [None] * count
        submitted = refused = 0
        at = 0
        while at < count:
            try:
                taken = kernel.call(
                    ctypes.c_long(kernel.submit),
                    self._id,
                    ctypes.c_long(count - at),
                    ctypes.byref(pointers, at * ctypes.sizeof(ctypes.c_void_p)),
                )
            except OSError as exc:
                if exc.errno == errno.EAGAIN:  # out of resources: the rest the plain way
                    break
                if exc.errno == errno.EINVAL:  # not for this file (a pipe), or no AIO fsync
                    refused += 1  # here at all: synced the plain way, which says why
                elif exc.errno == errno.EBADF:
                    results[at] = exc.errno  # this request's own fault
                elif submitted == 0:  # EPERM, ENOSYS (a sandbox): AIO is not for us
                    raise
                else:
                    break  # the rest the plain way
                at += 1
                continue
            for i in range(at, at + taken):
                results[i] = _PENDING
            submitted += taken
            at += taken
        if refused == count > 1:  # no file's own fault: the kernel has no AIO fsync
            raise OSError(errno.EINVAL, "this kernel cannot fsync through AIO")
        events = self._events
        done = 0
        failure: OSError | None = None
        while done < submitted:
            try:
                got = kernel.call(
                    ctypes.c_long(kernel.getevents),
                    self._id,
                    ctypes.c_long(submitted - done),
                    ctypes.c_long(submitted - done),
                    ctypes.byref(events, done * ctypes.sizeof(_Event)),
                    None,
                )
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                failure = exc
                break
            done += got
        reaped = memoryview(events).cast("B")[: done * _EVENT.size]
        for number, _, res, _ in _EVENT.iter_unpack(reaped):
            results[number] = -res if res < 0 else 0
        if failure is not None:
            # Submitted, outcome unknown: the kernel may have run them and consumed the
            # file's error (errseq: a plain fsync now would return 0). They fail, resumably.
            results = [errno.EIO if code == _PENDING else code for code in results]
            raise _Unreaped(results) from failure
        return results


_kernel: _Kernel | None = None
#: Why native AIO is not used in this process, once it is known (None: it is, or untried).
_unusable: str | None = None
_idle: list[_Context] = []
_mutex = threading.Lock()


def _take() -> _Context | None:
    global _kernel, _unusable
    with _mutex:
        if _unusable is not None:
            return None
        if _idle:
            return _idle.pop()
        try:
            _kernel = _kernel or _Kernel()
            return _Context(_kernel)
        except OSError as exc:
            if exc.errno != errno.EAGAIN:  # EAGAIN: fs.aio-max-nr is used up, for now
                _unusable = exc.strerror or "unavailable"
            return None


def fsync_all(requests: Sequence[tuple[int, bool]]) -> list[int | None] | None:
    """fsync each ``(fd, data_only)`` at once: fdatasync(2) where ``data_only``, else fsync(2).

    Returns, per request, 0 once it is durable or the errno it failed with; None for one
    the kernel did not take (out of AIO resources, or a file it cannot sync that way),
    which the caller syncs the plain way.
    Returns None when native AIO is not available at all. Blocks until every request taken
    is done: a descriptor must stay open until then.
    """
    context = _take()
    if context is None:
        return None
    results: list[int | None] = []
    try:
        for start in range(0, len(requests), DEPTH):
            results += context.sync(requests[start : start + DEPTH])
    except OSError as exc:  # refused outright: never again in this process
        _give_up(exc)
        context.destroy()
        if isinstance(exc, _Unreaped):
            results += exc.results
        return results + [None] * (len(requests) - len(results))
    with _mutex:
        _idle.append(context)
    return results


def available() -> bool:
    """Whether `fsync_all` may be worth a try (False once it failed for good)."""
    return _unusable is None


#: How many forks this process is from the one that started: a context belongs to its own.
_generation = 0


def _forget_in_child() -> None:
    # A forked child does not inherit AIO contexts (their ring is not copied).
    global _mutex, _generation
    _idle.clear()
    _mutex = threading.Lock()
    _generation += 1


os.register_at_fork(after_in_child=_forget_in_child)


class Flight:
    """fsyncs handed to the kernel that nobody waits for yet: the caller works on meanwhile.

    Why: one run alone pays for each step's fdatasync (~100-200 µs here) and then for its
    own CPU work (~150 µs) one after the other. Started with `launch` and waited for with
    `land` just before anything must be durable (an activity starting), the flush and the
    CPU work of the workflow's next step overlap: the kernel runs an AIO fsync in a worker
    of its own (Linux 4.18+), off this thread. A flight belongs to one thread. It holds one
    context from its first launch until `close`, with its two calls bound to it: a step
    pays two system calls, not the making of their arguments (~10 µs a step when made
    anew each time).
    """

    __slots__ = (
        "_context",
        "_events",
        "_file",
        "_generation",
        "_iocb",
        "_launched",
        "_pointer",
        "_reap_one",
        "_submit",
    )

    #: The most fsyncs of a flight in the air at once: `launch` lands them past that.
    MOST: Final = 8

    def __init__(self) -> None:
        self._context: _Context | None = None
        self._iocb = _Iocb()
        self._pointer = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(self._iocb))
        self._events = (_Event * self.MOST)()
        self._launched = 0
        #: The file and kind of sync the iocb is set for.
        self._file: tuple[int, bool] | None = None
        self._submit: Callable[[], int] | None = None
        self._reap_one: Callable[[], int] | None = None
        #: The process (`_generation`) the held context is of.
        self._generation = _generation

    @property
    def full(self) -> bool:
        """Whether `MOST` fsyncs are in the air: land them before the next `launch`, which
        would otherwise land them itself and say only that it did not take its own."""
        return self._launched >= self.MOST

    @property
    def in_the_air(self) -> bool:
        """Whether an fsync was launched and not landed yet."""
        return self._launched > 0

    def launch(self, fd: int, *, data_only: bool) -> bool:
        """Hand the kernel an fsync of ``fd`` (fdatasync where ``data_only``) and return at
        once. False if it did not take it: the caller syncs the plain way (and `land` still
        waits for any launched before). ``fd`` must stay open until `land`."""
        if self._launched >= self.MOST and self.land():
            return False  # one failed: the plain sync says why, on this file
        submit = self._submit
        if submit is None or self._generation != _generation:  # none yet, or the parent's
            submit = self._hold()
            if submit is None:
                return False
        if self._file != (fd, data_only):
            self._iocb.opcode = _FDSYNC if data_only else _FSYNC
            self._iocb.fildes = fd
            self._file = (fd, data_only)
        try:
            submit()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EINVAL, errno.EBADF, errno.EINTR):
                _give_up(exc)  # EPERM, ENOSYS (a sandbox): AIO is not for this process
                if not self._launched:
                    self.close()
            return False
        self._launched += 1
        return True

    def land(self) -> int:
        """Wait for every fsync launched: 0 once all are durable, else the first failure's
        errno (``EIO`` where the outcome could not be learnt)."""
        launched = self._launched
        if not launched:
            return 0
        try:
            if launched == 1:  # nearly always: one a step
                assert self._reap_one is not None
                while True:
                    try:
                        self._reap_one()
                        break
                    except InterruptedError:
                        continue
                res = self._events[0].res
                first = -res if res < 0 else 0
            else:
                first = self._land_all(launched)
        except OSError:
            # Submitted, outcome unknown: the context is not reused (its events linger).
            assert self._context is not None
            self._context.destroy()
            self._context = self._submit = self._reap_one = None
            first = errno.EIO
        self._launched = 0
        return first

    def _land_all(self, launched: int) -> int:
        context = self._context
        assert context is not None
        kernel, events, byref = context._kernel, self._events, ctypes.byref
        first = done = 0
        while done < launched:
            left = ctypes.c_long(launched - done)
            try:
                got = kernel.call(
                    ctypes.c_long(kernel.getevents), context._id, left, left, byref(events), None
                )
            except InterruptedError:
                continue
            for event in events[:got]:
                if event.res < 0 and not first:
                    first = -event.res
            done += got
        return first

    def _hold(self) -> Callable[[], int] | None:
        """Take a context for this flight, and bind its calls to it."""
        context = self._context = _take()
        self._submit = self._reap_one = None
        # None in the air on it: any before were the parent's, which a forked child never
        # waits for (its own ring holds nothing of them).
        self._launched = 0
        if context is None:
            return None
        self._generation = _generation
        kernel = context._kernel
        self._submit = partial(
            kernel.call,
            ctypes.c_long(kernel.submit),
            context._id,
            _ONE,
            ctypes.byref(self._pointer),
        )
        self._reap_one = partial(
            kernel.call,
            ctypes.c_long(kernel.getevents),
            context._id,
            _ONE,
            _ONE,
            ctypes.byref(self._events),
            None,
        )
        return self._submit

    def close(self) -> int:
        """Land what is still in the air, then give the context back: the flight may be
        launched again later. Returns what `land` says (0: all durable)."""
        landed = self.land() if self._generation == _generation else 0
        context, self._context = self._context, None
        self._submit = self._reap_one = None
        if context is not None and self._generation == _generation:
            with _mutex:
                _idle.append(context)
        return landed


_ONE: Final = ctypes.c_long(1)


def _give_up(exc: OSError) -> None:
    global _unusable
    _unusable = exc.strerror or "unavailable"
