"""Attempting an activity: one attempt, on the real event loop or in a worker thread, and the
retry loop that repeats attempts under the activity's policy.

An attempt is bounded by ``start_to_close_timeout`` (and ``heartbeat_timeout`` when set): past
it the attempt is cancelled and reported as timed out. A ``schedule_to_close_timeout`` bounds
the whole call: each attempt gets at most the time left, and a retry that would start past it
is not made. ``async def`` activities run as tasks
on the event loop; plain ``def`` activities in a thread pool, so that they block nothing. A
thread cannot be stopped from outside, so a timed-out thread is abandoned, not killed: the
timeout error says so.

The result is checked before anyone sees it: it must encode as JSON, fit the payload limit and
match the return annotation; each failure is final (retrying cannot change it).

`run_attempt` reports outcomes and never raises for the activity's own failures.
`attempt_until_final` is the one retry loop: the engine runs it with hooks that record each
attempt, the direct runtime (an activity called from ordinary code) with none.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import heapq
import itertools
import math
import os
import threading
import time
import types
import weakref
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from .. import settings
from ..clock import Clock
from ..errors import EncodingError, Failure, PayloadTooLargeError, failure_type_names
from ..overrides import implementation_of
from ..payload import annotation_name, check_size, encode, explain, loads, result_advice
from ..runtime import ActivityContext, ActivityInfo, reset_activity_context, set_activity_context
from .loop import current_task

if TYPE_CHECKING:
    from ..definitions import ActivityDefinition
    from ..policy import ActivityOptions

_pool: ThreadPoolExecutor | None = None


def thread_pool() -> ThreadPoolExecutor:
    """The worker threads of plain ``def`` activities (``$WFRUN_ACTIVITY_THREADS``, 32 default)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=settings.activity_threads(), thread_name_prefix="wfrun-activity"
        )
    return _pool


@dataclass(slots=True)
class Heartbeats:
    """One activity call's heartbeats, carried from attempt to attempt.

    Details are kept encoded (a JSON list), exactly as the history records them, so the next
    attempt reads the same values whether it follows a failure in this process or a crash.
    """

    #: The latest details, encoded; empty when none were given yet.
    encoded: bytes = b""
    last_beat: float = 0.0
    #: Called on the event loop with each new set of encoded details (the engine records them).
    recorder: Callable[[bytes], None] | None = None

    @property
    def details(self) -> tuple[Any, ...]:
        return tuple(loads(self.encoded)) if self.encoded else ()

    def beat(self, encoded: bytes | None, at: float) -> None:
        self.last_beat = at
        if encoded is not None:
            self.encoded = encoded
            if self.recorder is not None:
                self.recorder(encoded)


@dataclass(slots=True)
class Outcome:
    """How one attempt ended."""

    duration: float
    #: The encoded result, when the attempt succeeded.
    result: bytes | None = None
    #: The result decoded against the return annotation.
    value: Any = None
    #: The failure, when it failed.
    error: Failure | None = None
    type_names: list[str] = field(default_factory=list)
    non_retryable: bool = False
    #: ``"start_to_close"``, ``"heartbeat"`` or ``"schedule_to_close"`` when it ran past one.
    timeout: str | None = None
    limit: float = 0.0
    exception: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def run_attempt(
    definition: ActivityDefinition,
    values: dict[str, Any],
    info: ActivityInfo,
    *,
    max_payload: int,
    heartbeats: Heartbeats,
    threads: set[Future[Any]] | None = None,
    budget: float | None = None,
) -> Outcome:
    """Run one attempt and report how it ended (cancellation of the caller propagates).

    A plain ``def`` activity's thread is added to ``threads`` while it runs: it cannot be
    stopped, so its caller must not let the run go before it returns. ``budget``: the seconds
    left under the call's ``schedule_to_close_timeout``, when it has one.
    """
    known = _own_limits.get(definition) if budget is None else None
    if known is not None and known[0] is definition.options:
        limit = known[1]
    else:
        limit = _Limit.of(definition, budget)
        if budget is None:  # the same for every attempt of every call: worked out once
            _own_limits[definition] = (definition.options, limit)
    loop = asyncio.get_running_loop()
    # The loop's clock: asyncio's own loop reads the monotonic clock in a Python frame (two
    # an attempt), read here without it. Looked up in `time` now, as that loop does at each
    # reading: a clock patched there after import (a test's) is the one its timers run on.
    now = loop.time
    if getattr(now, "__func__", None) is _LOOP_TIME:
        now = time.monotonic
    started = now()
    heartbeats.last_beat = started
    sink = _HeartbeatSink(loop, heartbeats, info.name)
    context = ActivityContext(info, heartbeat=sink)
    positional, keywords = definition.signature.call_arguments(values)
    token = set_activity_context(context)
    try:
        if definition.is_async and definition.options.heartbeat_timeout is None:
            expired, value = await _awaited_here(definition, positional, keywords, limit, started)
        else:
            expired, value = await _supervised(
                definition, positional, keywords, heartbeats, threads, info, limit
            )
    except Exception as exc:
        return _failed(exc, now() - started)
    finally:
        reset_activity_context(token)
        sink.closed = True  # an abandoned thread may go on beating: not for this attempt
    duration = now() - started
    if expired is not None:
        return _timed_out(definition, info, expired, duration)
    return _checked_result(definition, value, max_payload, duration)


#: What asyncio's own loops tell the time with (`time.monotonic`, in a Python frame).
_LOOP_TIME: Final = asyncio.BaseEventLoop.time


class _Limit(NamedTuple):
    """The time one attempt may take, and which timeout sets it (a tuple: one per attempt,
    made cheaply)."""

    seconds: float
    timeout: str

    @classmethod
    def of(cls, definition: ActivityDefinition, budget: float | None) -> _Limit:
        own = definition.options.start_to_close_timeout.total_seconds()
        if budget is not None and budget < own:
            return cls(budget, "schedule_to_close")
        return cls(own, "start_to_close")


#: Each definition's own attempt limit (its start_to_close_timeout), and the options it was
#: worked out from, by definition.
_own_limits: dict[ActivityDefinition, tuple[ActivityOptions, _Limit]] = {}


async def _awaited_here(
    definition: ActivityDefinition,
    positional: list[Any],
    keywords: dict[str, Any],
    limit: _Limit,
    started: float,
) -> tuple[str | None, Any]:
    """The common case, kept lean: an async activity awaited in this task under a timeout.

    Its first step runs at once, with no deadline: a timer cannot fire while a step runs,
    so an activity that returns without suspending (most do, or they wait on I/O) cannot
    time out. One that suspends is from then on under the deadline counted from
    ``started``, the attempt's start.

    The timeout is what ``asyncio.timeout`` does, without its scope object and state machine
    (a third of what wfrun spent on a no-op step): a timer that cancels this task, and on the
    way out the cancellation it caused is told apart from any other (``uncancel``).
    """
    loop = asyncio.get_running_loop()
    task = current_task(loop)
    assert task is not None  # run_attempt is always awaited in a task
    cancelling = task.cancelling()  # before the activity runs: it may cancel its own task
    call = implementation_of(definition)(*positional, **keywords)
    if type(call) is CoroutineType:
        try:
            suspended = call.send(None)
        except StopIteration as returned:
            return None, returned.value
        awaited: Any = _resumed(call, suspended)
    else:  # an awaitable of another kind: awaited as it is
        awaited = call
    expiry = _Expiry(task)
    deadlines = _deadlines.get(loop)
    if deadlines is None:
        deadlines = _deadlines[loop] = _Deadlines()
    deadlines.add(loop, started + limit.seconds, expiry)
    try:
        value = await awaited
    except asyncio.CancelledError:
        if expiry.fired and task.uncancel() <= cancelling:
            return limit.timeout, None  # our cancellation, and no other one pending
        raise
    except BaseException:
        if expiry.fired:  # it swallowed our cancellation and failed otherwise: as asyncio does
            task.uncancel()
        raise
    finally:
        deadlines.remove(expiry)
    if expiry.fired:  # it swallowed our cancellation and returned: the value stands
        task.uncancel()
    return None, value


@types.coroutine
def _resumed(call: Coroutine[Any, Any, Any], suspended: Any) -> Generator[Any, Any, Any]:
    """Await ``call``, whose first step already ran and yielded ``suspended``: the task
    waits on that, and what it sends or throws goes on to ``call``, as ``await`` would."""
    while True:
        try:
            sent = yield suspended
        except GeneratorExit:
            call.close()
            raise
        except BaseException as thrown:  # a cancellation, most likely: the activity gets it
            try:
                suspended = call.throw(thrown)
            except StopIteration as returned:
                return returned.value
        else:
            try:
                suspended = call.send(sent)
            except StopIteration as returned:
                return returned.value


class _Expiry:
    """What `_awaited_here`'s deadline does: cancel the attempt's task, and say it did."""

    __slots__ = ("fired", "over", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        #: Dropped once over: a deadline kept in the heap must not keep its task (and loop).
        self.task: asyncio.Task[Any] | None = task
        self.fired = False
        #: Expired or no longer needed (the attempt ended): `_Deadlines` forgets it.
        self.over = False

    def __call__(self) -> None:
        self.fired = True
        if self.task is not None:
            self.task.cancel()


class _Deadlines:
    """One loop's attempt deadlines under a single timer of the loop.

    A timer per attempt (made, pushed on the loop's heap, cancelled, and later swept out of
    it) cost more than the rest of a no-op attempt's bookkeeping. Here an attempt pushes its
    deadline on a heap of its own and marks it over when it ends; the loop's one timer is
    set for the earliest deadline, and moved only when an earlier one comes (steps that
    follow one another, with the same timeout, never move it). Deadlines that are over are
    dropped as they reach the top, or all at once when they outnumber the live ones.
    """

    # It holds no reference to its loop (the registry's key): a finished loop is let go.
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Expiry]] = []
        self._order = itertools.count()  # equal deadlines: first come, first expired
        #: The loop's timer, held weakly: it holds the loop, and the loop holds it.
        self._timer: weakref.ReferenceType[asyncio.TimerHandle] | None = None
        self._armed = math.inf
        self._live = 0

    def add(self, loop: asyncio.AbstractEventLoop, when: float, expiry: _Expiry) -> None:
        heapq.heappush(self._heap, (when, next(self._order), expiry))
        self._live += 1
        if when < self._armed:
            self._arm(loop, when)

    def remove(self, expiry: _Expiry) -> None:
        if expiry.over:
            return
        expiry.over = True
        expiry.task = None
        self._live -= 1
        heap = self._heap
        if len(heap) > _SWEEP_AT and len(heap) > 2 * self._live:
            heap[:] = [entry for entry in heap if not entry[2].over]
            heapq.heapify(heap)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        armed = self._timer() if self._timer is not None else None
        if armed is not None:
            armed.cancel()
        self._timer = weakref.ref(loop.call_at(when, self._fire))
        self._armed = when

    def _fire(self) -> None:
        self._timer = None
        self._armed = math.inf
        heap = self._heap
        loop = asyncio.get_running_loop()  # a callback of the loop: it is running
        now = loop.time()
        while heap and (heap[0][2].over or heap[0][0] <= now):
            expiry = heapq.heappop(heap)[2]
            if not expiry.over:
                expiry.over = True
                self._live -= 1
                expiry()
                expiry.task = None
        if heap:  # the next one (a timer that came a hair early comes back at once)
            self._arm(loop, heap[0][0])


#: Deadlines over that the heap keeps before it is swept (when they outnumber the live ones).
_SWEEP_AT: Final = 64
_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary()
)


async def _supervised(
    definition: ActivityDefinition,
    positional: list[Any],
    keywords: dict[str, Any],
    heartbeats: Heartbeats,
    threads: set[Future[Any]] | None,
    info: ActivityInfo,
    limit: _Limit,
) -> tuple[str | None, Any]:
    """A task or a thread of its own, watched for both timeouts (the context is copied in)."""
    loop = asyncio.get_running_loop()
    work: asyncio.Future[Any]
    fn = implementation_of(definition)
    if definition.is_async:
        work = loop.create_task(fn(*positional, **keywords))
    else:
        call = functools.partial(fn, *positional, **keywords)
        thread = thread_pool().submit(contextvars.copy_context().run, call)
        if threads is not None:
            threads.add(thread)
            thread.add_done_callback(threads.discard)
        work = asyncio.wrap_future(thread, loop=loop)
    try:
        expired = await _watch_timeouts(work, definition, heartbeats, limit)
    except asyncio.CancelledError:
        info.cancel()  # a thread cannot be interrupted: it can be told
        raise
    if expired is not None:
        info.cancel()
    return (expired, None) if expired is not None else (None, work.result())


async def _watch_timeouts(
    work: asyncio.Future[Any], definition: ActivityDefinition, heartbeats: Heartbeats, limit: _Limit
) -> str | None:
    """Wait for ``work``; cancel it and say which timeout expired, if one did."""
    loop = asyncio.get_running_loop()
    options = definition.options
    deadline = loop.time() + limit.seconds
    silence = options.heartbeat_timeout.total_seconds() if options.heartbeat_timeout else None
    try:
        while True:
            now = loop.time()
            expired = limit.timeout if now >= deadline else None
            if silence is not None and now - heartbeats.last_beat >= silence:
                expired = "heartbeat"
            if expired is not None:
                await _cancel(work)
                return expired
            wait = deadline - now
            if silence is not None:
                wait = min(wait, heartbeats.last_beat + silence - now)
            done, _ = await asyncio.wait({work}, timeout=wait)
            if done:
                return None
    except asyncio.CancelledError:
        await _cancel(work)
        raise


async def _cancel(work: asyncio.Future[Any]) -> None:
    work.cancel()
    if isinstance(work, asyncio.Task):
        # Let the activity's own cleanup (finally blocks, async context managers) run, briefly.
        await asyncio.wait({work}, timeout=1.0)


class _HeartbeatSink:
    """Where one attempt's `activity_heartbeat` calls go, from the loop or from a thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, heartbeats: Heartbeats, name: str) -> None:
        self._loop = loop
        self._heartbeats = heartbeats
        self._loop_thread = threading.get_ident()
        self._name = name
        self.closed = False

    def __call__(self, details: tuple[Any, ...]) -> None:
        # Encoded here, in the activity's own call: a value that cannot be recorded fails
        # where it was given, not later in the engine.
        subject = f"the heartbeat details of activity {self._name!r}"
        encoded = encode(list(details), subject=subject) if details else None
        if threading.get_ident() == self._loop_thread:
            self._beat(encoded)
        else:  # a plain def activity in a worker thread
            self._loop.call_soon_threadsafe(self._beat, encoded)

    def _beat(self, encoded: bytes | None) -> None:
        if not self.closed:
            self._heartbeats.beat(encoded, self._loop.time())


def _failed(exc: BaseException, duration: float, *, non_retryable: bool = False) -> Outcome:
    failure = Failure.of(exc, non_retryable=non_retryable)
    return Outcome(
        duration=duration,
        error=failure,
        type_names=failure_type_names(exc),
        non_retryable=failure.non_retryable,
        exception=exc,
    )


def _timed_out(
    definition: ActivityDefinition, info: ActivityInfo, expired: str, duration: float
) -> Outcome:
    options = definition.options
    if expired == "heartbeat":
        assert options.heartbeat_timeout is not None
        limit = options.heartbeat_timeout.total_seconds()
        message = (
            f"attempt {info.attempt} of activity {definition.name!r} sent no heartbeat for "
            f"{limit:g}s (heartbeat_timeout) and was cancelled"
        )
    elif expired == "schedule_to_close":
        assert options.schedule_to_close_timeout is not None
        limit = options.schedule_to_close_timeout.total_seconds()
        message = (
            f"activity {definition.name!r} ran past its schedule_to_close_timeout of {limit:g}s "
            f"(all attempts and retry delays) during attempt {info.attempt}, which was cancelled"
        )
    else:
        limit = options.start_to_close_timeout.total_seconds()
        message = (
            f"attempt {info.attempt} of activity {definition.name!r} ran past its "
            f"start_to_close_timeout of {limit:g}s and was cancelled"
        )
    if not definition.is_async:  # a thread was abandoned: say so
        message += (
            "; it runs in a thread (a plain def activity), which Python cannot stop, so the "
            "thread may still be running: make the function return on its own (e.g. pass a "
            "timeout to the call that hangs)"
        )
    return _timeout(message, expired, limit, duration)


def _timeout(message: str, expired: str, limit: float, duration: float) -> Outcome:
    return Outcome(
        duration=duration,
        error=Failure("TimeoutError", message),
        type_names=["TimeoutError", "OSError", "Exception"],
        timeout=expired,
        limit=limit,
        exception=TimeoutError(message),
    )


def _out_of_time(
    definition: ActivityDefinition, attempt: int, last: Outcome | None, delay: float
) -> Outcome:
    """The call's schedule_to_close_timeout leaves no time for attempt ``attempt`` (+1 when
    ``last`` failed and a retry would follow it after ``delay`` seconds)."""
    assert definition.options.schedule_to_close_timeout is not None
    limit = definition.options.schedule_to_close_timeout.total_seconds()
    subject = f"activity {definition.name!r}"
    if last is None:
        message = (
            f"{subject} reached its schedule_to_close_timeout of {limit:g}s before attempt "
            f"{attempt} could start"
        )
        return _timeout(message, "schedule_to_close", limit, 0.0)
    assert last.error is not None
    message = (
        f"attempt {attempt} of {subject} failed ({last.error.describe()}) and the next "
        f"attempt, due in {delay:g}s, would start past the activity's schedule_to_close_timeout "
        f"of {limit:g}s: no further attempt"
    )
    outcome = _timeout(message, "schedule_to_close", limit, last.duration)
    assert outcome.exception is not None
    outcome.exception.__cause__ = last.exception
    return outcome


def _checked_result(
    definition: ActivityDefinition, value: Any, max_payload: int, duration: float
) -> Outcome:
    subject = f"activity {definition.name!r}"
    try:
        data = encode(value, subject=f"the result of {subject}")
        if len(data) > max_payload:  # the test first: a frame less for every result
            check_size(data, limit=max_payload, activity=definition.name, side="output")
    except (EncodingError, PayloadTooLargeError) as exc:
        return _failed(exc.with_traceback(None), duration, non_retryable=True)
    if definition.signature.unchanged_result(value):  # it is what its encoding decodes to
        return Outcome(duration=duration, result=data, value=value)
    try:
        typed = definition.signature.decode_result(data)
    except Exception as exc:
        annotation = definition.signature.result_annotation
        code = definition.fn.__code__
        where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
        mismatch = ResultTypeError(
            f"the result of {subject} ({where}) does not match its return annotation "
            f"{annotation_name(annotation)}: {explain(exc)}; {result_advice(annotation, value)}"
        )
        return _failed(mismatch, duration, non_retryable=True)
    return Outcome(duration=duration, result=data, value=typed)


class ResultTypeError(TypeError):
    """An activity returned something its return annotation does not allow."""


# -- the retry loop -----------------------------------------------------------------------------


class AttemptHooks(Protocol):
    """What the caller of `attempt_until_final` learns as attempts start and end."""

    def starting(self, attempt: int) -> None:
        """Attempt ``attempt`` is about to run."""

    def retrying(self, attempt: int, outcome: Outcome, delay: float) -> None:
        """Attempt ``attempt`` failed and the next one follows after ``delay`` seconds."""


class _NoHooks:
    def starting(self, attempt: int) -> None:
        pass

    def retrying(self, attempt: int, outcome: Outcome, delay: float) -> None:
        pass


async def attempt_until_final(
    definition: ActivityDefinition,
    values: dict[str, Any],
    info: ActivityInfo,
    *,
    max_payload: int,
    heartbeats: Heartbeats,
    clock: Clock,
    hooks: AttemptHooks | None = None,
    threads: set[Future[Any]] | None = None,
    deadline: datetime | None = None,
) -> tuple[int, Outcome]:
    """Attempt the call from attempt ``info.attempt`` on, under its retry policy, until one
    attempt succeeds or a failure is final; return that attempt's number and outcome.

    ``deadline``: when the call's ``schedule_to_close_timeout`` runs out (its scheduling time
    plus the timeout, on ``clock``), so that it holds across resumes; None: no such limit.
    """
    hooks = hooks or _NoHooks()
    policy = definition.options.retry_policy
    attempt = info.attempt
    # The caller's info serves the first attempt as it is when there are no details to add
    # (a replace costs as much as the rest of a no-op step's bookkeeping); every later attempt
    # gets a fresh one, with its own cancel flag and the details so far.
    reuse = not heartbeats.encoded and not info.heartbeat_details
    while True:
        hooks.starting(attempt)
        if reuse:
            reuse = False
        else:
            info = dataclasses.replace(info, attempt=attempt, heartbeat_details=heartbeats.details)
        budget = _seconds_left(deadline, clock)
        if budget is not None and budget <= 0:  # e.g. resumed long after the call was made
            return attempt, _out_of_time(definition, attempt, None, 0.0)
        outcome = await run_attempt(
            definition,
            values,
            info,
            max_payload=max_payload,
            heartbeats=heartbeats,
            threads=threads,
            budget=budget,
        )
        if outcome.error is None or outcome.timeout == "schedule_to_close":
            return attempt, outcome
        delay = policy.next_delay(attempt, outcome.type_names, outcome.non_retryable)
        if delay is None:
            return attempt, outcome
        left = _seconds_left(deadline, clock)
        if left is not None and delay >= left:  # Temporal's rule: no retry that cannot finish
            return attempt, _out_of_time(definition, attempt, outcome, delay)
        hooks.retrying(attempt, outcome, delay)
        await clock.sleep(delay)
        attempt += 1


def _seconds_left(deadline: datetime | None, clock: Clock) -> float | None:
    return None if deadline is None else (deadline - clock.now()).total_seconds()
