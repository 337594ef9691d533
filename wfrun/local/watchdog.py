"""Spotting ``async`` activities that block the event loop (``time.sleep``, ``requests.post``).

A blocking call inside an ``async def`` activity stalls every other activity, timer and run in
the process. The watchdog measures it without touching the hot path: a callback on the loop
records a tick every 50 ms, and a thread checks that ticks keep coming. When one is late past
the threshold, the thread looks at the loop thread's stack *while it is still blocked*, finds
the activity function in it, and, once the loop breathes again, a warning names the activity,
the time it blocked, the line it blocked at and the fix.

The threshold is 0.25 s; set ``WFRUN_BLOCKING_THRESHOLD`` (seconds, ``0`` turns it off).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Final

from .. import settings
from ..definitions import activity_name_at

_TICK: Final = 0.05


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class LoopWatchdog:
    """Watches one event loop, from the process's watchdog thread (`_Watcher`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold: float,
        report: Callable[[str], None] = _stderr,
    ) -> None:
        self._loop = loop
        self._threshold = threshold
        self._report = report
        self._loop_thread = threading.get_ident()
        self._last_tick = time.monotonic()
        self._suspect: str | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.users = 0

    def start(self) -> None:
        self._last_tick = time.monotonic()
        self._handle = self._loop.call_later(_TICK, self._tick)
        _watcher.watch(self)

    def stop(self) -> None:
        _watcher.forget(self)
        if self._handle is not None:
            self._handle.cancel()
        self._check()  # the block may have been the run's last step: report it all the same

    def _tick(self) -> None:
        self._check()
        self._handle = self._loop.call_later(_TICK, self._tick)

    def _check(self) -> None:
        now = time.monotonic()
        # The block began within one tick after the last tick: the middle of that tick is
        # the best estimate of its start (±25 ms).
        blocked = now - self._last_tick - _TICK / 2
        suspect, self._suspect = self._suspect, None
        if suspect is not None and blocked >= self._threshold:
            self._report(
                f"wfrun: {suspect} blocked the event loop for about {blocked:.2f}s, stalling every "
                "other activity and timer. Use an async library (httpx.AsyncClient, "
                "asyncio.sleep, aiofiles) or make it a plain `def` activity, which runs in a "
                "worker thread."
            )
        self._last_tick = now

    def look(self) -> None:
        """From the watchdog thread: while the loop is late, find whom to blame, once."""
        late = time.monotonic() - self._last_tick - _TICK / 2
        if late >= self._threshold and self._suspect is None:
            frame = sys._current_frames().get(self._loop_thread)
            self._suspect = suspect(frame) if frame is not None else "the event loop"


class _Watcher:
    """The one thread that looks at every watched loop each tick.

    Started once per process and kept, idle while no loop is watched: a thread started per
    watch cost more than a whole short run (the start waits for the new thread to get the
    GIL, which the busy loop thread holds), and runs come and go all the time.
    """

    def __init__(self) -> None:
        self._watched: set[LoopWatchdog] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        #: Whether the thread waits for a loop to watch (else a notify would find nobody).
        self._idle = False

    def watch(self, watchdog: LoopWatchdog) -> None:
        with self._cond:
            self._watched.add(watchdog)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="wfrun-watchdog", daemon=True
                )
                self._thread.start()
            if self._idle:
                self._cond.notify()

    def forget(self, watchdog: LoopWatchdog) -> None:
        with self._cond:
            self._watched.discard(watchdog)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._watched:
                    self._idle = True
                    self._cond.wait()
                self._idle = False
            time.sleep(_TICK)
            with self._cond:
                watched = list(self._watched)
            for watchdog in watched:
                watchdog.look()


_watcher = _Watcher()


def _forget_in_child() -> None:
    # A forked child has no watchdog thread: it starts its own when it watches a loop.
    global _watcher
    _watcher = _Watcher()


os.register_at_fork(after_in_child=_forget_in_child)


def _blame(frame: FrameType) -> str:
    """``activity 'fetch' (at app.py:12)`` for the innermost activity on the stack."""
    innermost = frame
    while frame is not None:
        name = activity_name_at(frame.f_code)
        if name is not None:
            return f"activity {name!r} (at {_where(frame)})"
        frame = frame.f_back  # type: ignore[assignment]
    return f"code at {_where(innermost)}"


_PACKAGE: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


#: Where the standard library's frames say they come from (3.11 freezes some modules), and
#: code it generates (a dataclass's ``__init__``, a namedtuple's ``__new__``).
_STDLIB_FILES: Final = (os.path.dirname(os.__file__) + os.sep, "<frozen ", "<string>")

#: The event loop's own turn: reached through the standard library alone, the loop was busy
#: running callbacks one after another (hundreds of runs' steps), not blocked inside one.
_LOOP_TURN: Final = asyncio.BaseEventLoop._run_once.__code__  # type: ignore[attr-defined]


def suspect(frame: FrameType) -> str | None:
    """Who to name for a loop blocked at ``frame``; None when it is wfrun's own code (a burst
    of new runs' fsyncs, say), or the event loop's own work between callbacks (many live
    runs), which no advice to the user would fix. The standard library is looked through:
    what matters is whose code called it."""
    caller: FrameType | None = frame
    while caller is not None:
        if caller.f_code.co_filename.startswith(_PACKAGE):
            return None  # first: a system-wide install lies under the standard library's folder
        if caller.f_code is _LOOP_TURN:
            return None
        if not caller.f_code.co_filename.startswith(_STDLIB_FILES):
            break
        caller = caller.f_back
    return _blame(frame)


def _where(frame: FrameType) -> str:
    return f"{os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno}"


_watchdogs: dict[asyncio.AbstractEventLoop, LoopWatchdog] = {}


def watching() -> contextlib.AbstractContextManager[None]:
    """Keep a watchdog on the running loop while the body runs (shared by concurrent runs)."""
    return _Watching()


class _Watching:
    """`watching`'s context manager: a class, not a generator, since every run enters one
    (and a run that never waits, in a crowd of such runs, starts and stops the watchdog)."""

    __slots__ = ("_loop", "_watchdog")

    def __enter__(self) -> None:
        limit = settings.blocking_threshold()
        if limit <= 0:
            self._watchdog: LoopWatchdog | None = None
            return
        loop = self._loop = asyncio.get_running_loop()
        watchdog = _watchdogs.get(loop)
        if watchdog is None:
            watchdog = _watchdogs[loop] = LoopWatchdog(loop, limit)
            watchdog.start()
        watchdog.users += 1
        self._watchdog = watchdog

    def __exit__(self, *_: object) -> None:
        watchdog = self._watchdog
        if watchdog is None:
            return
        watchdog.users -= 1
        if watchdog.users == 0:
            watchdog.stop()
            del _watchdogs[self._loop]
