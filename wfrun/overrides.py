"""Activity implementations swapped for others by name, within one context: for users' tests.

`wfrun.testing.mock_activities` (and the ``run_workflow`` helper built on it) sets a mapping
of activity names to stand-ins in a `contextvars.ContextVar`; an attempt looks its activity up
here when it starts (`implementation_of`), so the stand-in runs instead of the function the
decorator holds. The mapping lives in the context of the code that set it, and asyncio tasks
and activity threads copy their context when they are created: two tests running workflows
at once, each with its own stand-ins, never see each other's, and nothing outside that context
is changed. Everything else about the call is kept: arguments are encoded and decoded, the
stand-in's result is checked against the activity's return annotation and recorded in the
history, and retries and timeouts apply.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .definitions import ActivityDefinition


@dataclass(frozen=True, slots=True)
class ActivityCall:
    """One attempt of a substituted activity: its name and its arguments by name."""

    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Substitutes:
    """The stand-ins in force, and every call they received, in order."""

    stand_ins: Mapping[str, Callable[..., Any]]
    calls: list[ActivityCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: ActivityCall) -> None:
        with self._lock:  # plain ``def`` activities run in threads
            self.calls.append(call)


_CURRENT: ContextVar[Substitutes | None] = ContextVar("wfrun_activity_substitutes", default=None)


@contextmanager
def substituted(stand_ins: Mapping[str, Callable[..., Any]]) -> Iterator[Substitutes]:
    """Within this block (and tasks and threads started from it), run ``stand_ins`` instead
    of the activities of those names."""
    substitutes = Substitutes(dict(stand_ins))
    token = _CURRENT.set(substitutes)
    try:
        yield substitutes
    finally:
        _CURRENT.reset(token)


def implementation_of(definition: ActivityDefinition) -> Callable[..., Any]:
    """What an attempt of ``definition`` calls: a stand-in when one is in force for its name
    (made async or plain like the activity), else the activity's own function."""
    substitutes = _CURRENT.get()
    stand_in = None if substitutes is None else substitutes.stand_ins.get(definition.name)
    if substitutes is None or stand_in is None:
        return definition.fn
    return _standing_in(definition, substitutes, stand_in)


def _standing_in(
    definition: ActivityDefinition, substitutes: Substitutes, stand_in: Callable[..., Any]
) -> Callable[..., Any]:
    # Apart from `implementation_of`: the closures' variables are cells made as a function
    # starts, four objects for every attempt of every activity if they were made there.
    signature = inspect.signature(definition.fn)

    def recorded(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        arguments = dict(signature.bind(*args, **kwargs).arguments)
        substitutes.record(ActivityCall(definition.name, arguments))
        return stand_in(*args, **kwargs)

    if definition.is_async:

        @functools.wraps(definition.fn)
        async def async_stand_in(*args: Any, **kwargs: Any) -> Any:
            value = recorded(args, kwargs)
            return await value if inspect.isawaitable(value) else value

        return async_stand_in

    @functools.wraps(definition.fn)
    def plain_stand_in(*args: Any, **kwargs: Any) -> Any:
        return recorded(args, kwargs)

    return plain_stand_in
