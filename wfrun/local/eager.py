"""Starting a task eagerly: its first step runs now, inline, as Python 3.12's eager tasks do.

A task made with ``create_task`` first runs in a later turn of the loop. For a live step that
costs a turn per activity, and a second one for the run to hear of the outcome: most of what a
no-op activity costs. Started eagerly, an activity that finishes without suspending has its
outcome reported before the call that started it returns, and the run takes it in the same turn.

What the activity sees is what a task sees: ``asyncio.current_task()`` is its own task (made
first, then stepped), its contextvars are the task's copied context, and a task that suspends
goes on as any task does (cancelled, awaited, timed out). On 3.12+ this is asyncio's own
``eager_start``. Python 3.11 has none: the task is made with its first step caught instead of
scheduled (``Task.__init__`` hands it to ``loop.call_soon``), and that step is run at once,
with the task swapped in as the loop's current one, as 3.12 does. A loop where this cannot be
done (one without an instance ``__dict__``, such as uvloop's) gets ``create_task``, and so does
a loop with a task factory: its tasks are the factory's to make (tracing, context propagation).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["start_eagerly"]


def _eager_312(coro: Coroutine[Any, Any, T], name: str | None) -> asyncio.Task[T]:
    loop = asyncio.get_running_loop()
    if loop.get_task_factory() is not None:  # its tasks are the factory's to make
        return loop.create_task(coro, name=name)
    return asyncio.Task(coro, loop=loop, name=name, eager_start=True)  # type: ignore[call-arg]


class _Caught:
    """Stands in for ``loop.call_soon`` while a task is made: keeps its first step."""

    __slots__ = ("context", "step")

    def __init__(self) -> None:
        self.step: Callable[[], object] | None = None
        self.context: contextvars.Context | None = None

    def __call__(
        self, callback: Callable[[], object], *args: Any, context: contextvars.Context | None = None
    ) -> None:
        # The one call `Task.__init__` makes: its first step, in the task's own context.
        self.step = callback
        self.context = context


_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task
_current_tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = asyncio.tasks._current_tasks  # type: ignore[attr-defined]


def _eager_311(coro: Coroutine[Any, Any, T], name: str | None) -> asyncio.Task[T]:
    loop = asyncio.get_running_loop()
    if loop.get_task_factory() is not None:  # its tasks are the factory's to make
        return loop.create_task(coro, name=name)
    caught = _Caught()  # one per start: loops of other threads start tasks meanwhile
    try:
        own = loop.__dict__.get("call_soon")
    except AttributeError:  # no instance attributes (a loop written in C): not eagerly
        return loop.create_task(coro, name=name)
    loop.call_soon = caught  # type: ignore[method-assign,assignment]
    try:
        task = asyncio.Task(coro, loop=loop, name=name)
    finally:
        if own is None:
            del loop.call_soon
        else:
            loop.call_soon = own  # type: ignore[method-assign]
    step, context = caught.step, caught.context
    assert step is not None  # what 3.11's Task.__init__ hands over
    assert context is not None
    outer = _current_tasks.get(loop)
    if outer is not None:
        _leave_task(loop, outer)
    try:
        context.run(step)
    finally:
        if outer is not None:
            _enter_task(loop, outer)
    return task


#: Start ``coro`` as a task on the running loop, its first step run now (see the module doc).
start_eagerly: Callable[[Coroutine[Any, Any, Any], str | None], asyncio.Task[Any]] = (
    _eager_312 if sys.version_info >= (3, 12) else _eager_311
)
