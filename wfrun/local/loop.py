"""A deterministic asyncio event loop for workflow code.

Workflow code is ordinary asyncio code: ``asyncio.gather``, ``asyncio.wait``,
``asyncio.as_completed``, ``create_task``, ``wait_for``, ``TaskGroup`` and ``asyncio.sleep``
all work. What makes a replay exact is that this loop, unlike a real one, never decides
anything by itself:

- it runs only when the engine steps it (`WorkflowLoop.run_until_quiescent`), after the engine
  has delivered one history event, and it runs ready callbacks in FIFO order until none is left;
  so the workflow makes the same decisions in the same order, live and on replay (a replay
  may resolve an awaited call at once instead, see `WorkflowCall`, only where that step would
  have ended with exactly that event delivered next);
- its clock (`WorkflowLoop.time`) is the time of the event being delivered;
- every delay (``call_at``/``call_later``, hence ``asyncio.sleep``, ``wait_for``'s and
  ``timeout()``'s deadlines) becomes a durable timer owned by the engine;
- tasks, futures and awaitable commands get hashes from a per-run counter instead of their
  memory address, so the sets that ``asyncio.wait`` and ``asyncio.as_completed`` build iterate
  in the same order in every process.

The loop knows nothing of activities or histories: its owner (`LoopOwner`) turns timers into
commands and decides when a condition is met.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import sys
import weakref
from asyncio import format_helpers
from collections.abc import Callable, Coroutine, Generator, Sized
from datetime import datetime
from types import CodeType, FunctionType
from typing import Any, Final, Protocol, TypeVar, TypeVarTuple

from .. import runtime as _runtime

T = TypeVar("T")
#: The task running on a loop (``asyncio.current_task(loop)``, a loop given): asyncio's own
#: table where it has one, as 3.11's ``current_task`` is a Python function around it.
current_task: Final[Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]] = getattr(
    getattr(asyncio.tasks, "_current_tasks", None), "get", asyncio.current_task
)
_getprofile = sys.getprofile
_setprofile = sys.setprofile
_new_handle = object.__new__
_copy_context = contextvars.copy_context
#: How many tasks a loop registers before it first sweeps those gone (`WorkflowLoop._own`).
_SWEEP_AT: Final = 64
Ts = TypeVarTuple("Ts")


def _nested(function: Any, name: str) -> list[CodeType]:
    """The code of the functions named ``name`` that ``function`` defines (none if it has
    no code of its own, as on a Python whose asyncio changed)."""
    code = getattr(function, "__code__", None)
    consts = code.co_consts if code is not None else ()
    return [c for c in consts if isinstance(c, CodeType) and c.co_name == name]


#: asyncio's own callbacks that a workflow's steps run most: ``gather``'s for each awaitable
#: it was given, ``wait``'s and ``as_completed``'s, ``wait_for``'s and ``sleep``'s. They
#: settle futures and call none of the user's code (but the methods of a user's own Future
#: subclass, which they ask), so the determinism guard's hook (Python 3.11) is set aside
#: while they run: some ten events for it saved on each, one a call in a ``gather``. (3.12+
#: guards with ``sys.monitoring``, which drops asyncio's code at once.)
_ASYNCIO_CALLBACKS: Final[frozenset[CodeType]] = frozenset(
    [
        *_nested(asyncio.tasks.gather, "_done_callback"),
        *_nested(getattr(asyncio.tasks, "_wait", None), "_on_completion"),
        *_nested(asyncio.tasks.as_completed, "_on_completion"),
        *(
            function.__code__
            for function in (
                getattr(asyncio.tasks, "_release_waiter", None),
                getattr(asyncio.futures, "_set_result_unless_cancelled", None),
            )
            if isinstance(function, FunctionType)
        ),
    ]
    if sys.version_info < (3, 12)
    else []
)


def _out_of_sight(context: contextvars.Context, callback: Any, args: tuple[Any, ...]) -> None:
    """Run one of `_ASYNCIO_CALLBACKS` with the determinism guard's hook set aside."""
    hook = _getprofile()
    if (
        hook is None
        or hook.__class__ is not FunctionType
        or hook.__code__ is not _runtime.guard_hook_code
    ):
        context.run(callback, *args)
        return
    _setprofile(None)
    try:
        context.run(callback, *args)
    finally:
        _setprofile(hook)


class LoopOwner(Protocol):
    def start_timer(self, handle: WorkflowTimerHandle) -> None:
        """A durable timer was asked for; fire it with `WorkflowLoop.fire`."""

    def timer_cancelled(self, handle: WorkflowTimerHandle) -> None:
        """Workflow code cancelled a timer that has not fired."""

    def check_conditions(self) -> bool:
        """Resolve the conditions now met; True if any was (there is more to run)."""

    def guard(self) -> Any:
        """A context manager active while workflow code runs (determinism checks)."""

    def time_now(self) -> datetime:
        """The workflow's time, which the loop asks for when its own was left unset."""


class WorkflowFuture(asyncio.Future[T]):
    """A future whose hash is deterministic (see the module docstring)."""

    def __init__(self, *, loop: WorkflowLoop) -> None:
        # Without super(): one is made per activity call, replayed or live.
        asyncio.Future.__init__(self, loop=loop)
        self._key = next(loop._keys)

    def __hash__(self) -> int:
        return self._key


class WorkflowTask(asyncio.Task[T]):
    """A task whose hash is deterministic (see the module docstring)."""

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        loop: WorkflowLoop,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        self._key = next(loop._keys)
        super().__init__(coro, loop=loop, name=name, context=context)
        loop._own(self)
        if coro.__class__ is WorkflowCall:
            coro._stepped_by_a_task()

    def __hash__(self) -> int:
        return self._key


class WorkflowCall(Coroutine[Any, Any, T]):
    """What an activity call or a durable sleep returns inside a workflow.

    The command behind it was issued when the function was *called*, so commands are numbered
    in the order the code makes its calls, whatever order asyncio later starts tasks in. It is
    a coroutine (``asyncio.create_task`` accepts it) with a deterministic hash.

    Python warns of a native coroutine nobody awaited, never of this one: ``dropped`` is
    called instead when it is garbage before anything awaited it or started it as a task (in
    CPython, at once when the statement ``fetch(x)`` ends).

    ``settle`` is asked, when the call is awaited directly, whether it can resolve the future
    at once (a replay whose next recorded event is this call's outcome): the await then
    completes without suspending the task and without a trip through the loop.
    """

    # ``__dict__``: where a task that steps the call finds its ``send`` (`_stepped_by_a_task`).
    __slots__ = ("__dict__", "_awaited", "_dropped", "_future", "_iterator", "_key", "_settle")

    def __init__(
        self,
        future: asyncio.Future[T],
        key: int,
        dropped: Callable[[], None] | None = None,
        settle: Callable[[], object] | None = None,
    ) -> None:
        self._future = future
        self._iterator: Generator[Any, None, T] | None = None
        self._key = key
        self._awaited = False
        self._dropped = dropped
        self._settle = settle

    def __del__(self) -> None:
        if not self._awaited and self._dropped is not None:
            self._dropped()

    def __hash__(self) -> int:
        return self._key

    def __await__(self) -> Generator[Any, None, T]:
        self._awaited = True
        settle = self._settle
        if settle is not None:
            # A done future's iterator returns its result at once: no suspension.
            self._settle = None
            hook = _getprofile()
            if (
                hook is None
                or hook.__class__ is not FunctionType
                or hook.__code__ is not _runtime.guard_hook_code
            ):
                settle()
            else:  # wfrun's own work: out of the guard's hook (see `runtime.guard_hook_code`)
                _setprofile(None)
                try:
                    settle()
                finally:
                    _setprofile(hook)
        return self._future.__await__()

    def _started(self) -> Generator[Any, None, T]:
        self._awaited = True
        if self._iterator is None:
            self._iterator = self._future.__await__()
        return self._iterator

    def send(self, value: Any) -> Any:
        return self._started().send(value)

    def _stepped_by_a_task(self) -> None:
        """A task was made to step this call (``asyncio.gather`` makes one per call): it is
        started (never reported as dropped), and the task's every step sends straight to the
        future's iterator, a C method found in the instance's dictionary before `send` (a
        Python frame, and a C call the determinism guard's hook sees, less each step)."""
        self.__dict__["send"] = self._started().send

    def throw(self, typ: Any, value: Any = None, traceback: Any = None) -> Any:
        if value is None and traceback is None:  # the one-argument form (3.12+ deprecates 3)
            return self._started().throw(typ)
        return self._started().throw(typ, value, traceback)

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.close()


class WorkflowTimerHandle(asyncio.TimerHandle):
    """A ``call_at`` that the owner turns into a durable timer; ``seq`` is its command number."""

    seq: int = 0
    fired: bool = False


class WorkflowLoop(asyncio.AbstractEventLoop):
    """The loop workflow code runs on; only `run_until_quiescent` ever runs anything."""

    def __init__(self, owner: LoopOwner, now: float, conditions: Sized | None = None) -> None:
        """``conditions``: what the owner's `LoopOwner.check_conditions` looks at, if it says:
        the owner is asked only while it holds any (else at every quiescence)."""
        self._owner = owner
        self._conditions = conditions
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._keys = itertools.count(1)
        #: The loop's time; None: to be asked of the owner when read (`LoopOwner.time_now`),
        #: as a replayed step leaves it (most steps never read it).
        self._now: float | None = now
        self._exception_handler: Callable[[dict[str, Any]], None] | None = None
        #: This run's own tasks. `abandon` looks at these only: ``asyncio.all_tasks`` would
        #: scan every task of every run in the process, which made many live runs quadratic.
        #: Weak, as asyncio's own registry is: a finished task is nobody's business here.
        #: Plain references without callbacks, swept now and then (`_own`): a ``WeakSet``
        #: cost three Python frames per task (its add, the task's hash, its removal), all
        #: watched by the determinism guard when made in a step.
        self._tasks: list[weakref.ReferenceType[asyncio.Task[Any]]] = []
        self._sweep_at = _SWEEP_AT

    # -- what the engine uses ----------------------------------------------------------------

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """This run's tasks still alive (made by `create_task`), oldest first."""
        return [task for ref in self._tasks if (task := ref()) is not None]

    def _own(self, task: asyncio.Task[Any]) -> None:
        tasks = self._tasks
        tasks.append(weakref.ref(task))
        if len(tasks) >= self._sweep_at:
            # Those collected or done are dropped: `abandon` has nothing to tell them. Twice
            # the live ones before the next sweep: amortized, a constant per task.
            tasks[:] = [ref for ref in tasks if (alive := ref()) is not None and not alive.done()]
            self._sweep_at = max(_SWEEP_AT, 2 * len(tasks))

    def set_time(self, now: float) -> None:
        self._now = now

    def run_until_quiescent(self) -> None:
        """Run ready callbacks, FIFO, and met conditions, until nothing is left to run."""
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        ready = self._ready
        conditions = self._conditions
        try:
            with self._owner.guard():
                while True:
                    while ready:
                        # `Handle._run`, inline: a frame less per callback (each one, and
                        # each of its events for the determinism guard's hook, in a step).
                        # Taken by subscripts, not popleft(): a call is two more events.
                        handle: Any = ready[0]  # its slots are read (typeshed knows none)
                        del ready[0]
                        if handle._cancelled:  # as asyncio's own loop: skipped
                            continue
                        callback = handle._callback
                        try:
                            if (
                                callback.__class__ is FunctionType
                                and callback.__code__ in _ASYNCIO_CALLBACKS
                            ):
                                _out_of_sight(handle._context, callback, handle._args)
                            else:
                                handle._context.run(callback, *handle._args)
                        except (SystemExit, KeyboardInterrupt):
                            raise
                        except BaseException as exc:
                            self._callback_failed(handle, exc)
                    # Not asked with nothing to look at: a frame less each step, and the
                    # guard's hook sees none of it.
                    if conditions is not None and not conditions:
                        break
                    if not self._owner.check_conditions():
                        break
        finally:
            asyncio.events._set_running_loop(previous)

    def _callback_failed(self, handle: Any, exc: BaseException) -> None:
        """What `asyncio.Handle._run` does with what a callback raised."""
        source = format_helpers._format_callback_source(handle._callback, handle._args)
        context = {"message": f"Exception in callback {source}", "exception": exc, "handle": handle}
        if handle._source_traceback:
            context["source_traceback"] = handle._source_traceback
        self.call_exception_handler(context)

    def fire(self, handle: WorkflowTimerHandle) -> None:
        """Deliver a durable timer (the run is stepped by the caller)."""
        handle.fired = True
        if not handle.cancelled():
            self._ready.append(handle)

    def abandon(self) -> None:
        """Drop unfinished workflow tasks quietly: the run stops here and resumes elsewhere."""
        self._ready.clear()
        for task in self.tasks:
            if not task.done():
                task._log_destroy_pending = False  # type: ignore[attr-defined]

    # -- the asyncio loop API workflow code and asyncio's helpers rely on ---------------------

    def time(self) -> float:
        now = self._now
        if now is None:  # a replayed step left it to be asked for
            now = self._now = self._owner.time_now().timestamp()
        return now

    def call_soon(
        self,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        # `asyncio.Handle(...)`, its __init__ inline (this loop is never in debug mode): a
        # frame less for each callback (two a step), and for the guard's hook in a step.
        handle: Any = _new_handle(asyncio.Handle)  # its slots, unknown to typeshed, are set
        handle._callback = callback
        handle._args = args
        handle._loop = self
        handle._context = _copy_context() if context is None else context
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        self._ready.append(handle)
        return handle  # type: ignore[no-any-return]

    def call_later(
        self,
        delay: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(
        self,
        when: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = WorkflowTimerHandle(when, callback, args, self, context)
        self._owner.start_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        # asyncio.sleep cancels its handle even after it fired: only a pending one matters.
        if isinstance(handle, WorkflowTimerHandle) and not handle.fired:
            self._owner.timer_cancelled(handle)

    def create_future(self) -> asyncio.Future[Any]:
        return WorkflowFuture(loop=self)

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        hook = _getprofile()
        if (
            hook is None
            or hook.__class__ is not FunctionType
            or hook.__code__ is not _runtime.guard_hook_code
        ):
            return WorkflowTask(coro, loop=self, name=name, context=context)
        # In a step the determinism guard watches (Python 3.11): making a task runs none of
        # the user's code (its first step is scheduled, not run), only asyncio's and wfrun's,
        # some thirty events for the guard's hook (``asyncio.gather`` makes one per call).
        _setprofile(None)
        try:
            return WorkflowTask(coro, loop=self, name=name, context=context)
        finally:
            _setprofile(hook)

    #: A C function, not a method: asyncio's future asks its loop this as it is made (one
    #: per activity call), and no Python frame need run for it. ``bool()`` is False.
    get_debug = staticmethod(bool)

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is not None:
            self._exception_handler(context)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def run_in_executor(
        self, executor: Any, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        raise RuntimeError(
            "workflow code cannot run threads or do I/O (it is replayed after a crash): "
            "move this call into an @activity"
        )
