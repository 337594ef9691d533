"""``execute_activities_in_parallel``: Mistral Workflows' fan-out helper, built on activity calls.

Mistral runs it as a child workflow that continues-as-new over large inputs; here it is plain
workflow code: every item is one ordinary activity call, so each is recorded, retried and
never run again after a crash, like any other. The calls are issued in the items' order, at
most ``max_concurrent_scheduled_tasks`` at once, and the results come back in that order; a
resume replays them in the same order because the workflow's loop runs tasks first in, first
out, and outcomes reach it in history order.

Three ways to say what the items are, as in Mistral::

    # a list (each item is the activity's single argument, or a dict of its arguments by name)
    results = await workflows.execute_activities_in_parallel(process, items=[a, b, c])
    # a chain: each item is fetched from the one before, until the fetcher returns None
    results = await workflows.execute_activities_in_parallel(process, get_item_from_prev_item_activity=next_page)
    # pages by index: workflows.GetItemFromIndexParams(idx=0 .. n_items - 1, extra_params=...)
    results = await workflows.execute_activities_in_parallel(process, get_item_from_index_activity=page, n_items=10)
"""  # noqa: E501 - the examples read best on one line each

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import NoneType
from typing import Any, Final, TypeVar, overload

from .definitions import ActivityDefinition, activity_definition_of
from .errors import ApplicationError, WfrunError
from .payload import encode_arguments

__all__ = ["execute_activities_in_parallel"]

U = TypeVar("U")

#: Mistral's defaults.
DEFAULT_MAX_CONCURRENT_SCHEDULED_TASKS: Final = 100
DEFAULT_MAX_CONCURRENT_EXECUTIONS_PER_WORKER: Final = 100


_Activity = Callable[..., Awaitable[Any]]


@overload
async def execute_activities_in_parallel(  # type: ignore[overload-overlap]
    activity: Callable[..., Awaitable[None]],
    *,
    items: list[Any] | None = ...,
    get_item_from_prev_item_activity: _Activity | None = ...,
    get_item_from_index_activity: _Activity | None = ...,
    n_items: int | None = ...,
    max_concurrent_scheduled_tasks: int = ...,
    max_concurrent_executions_per_worker: int = ...,
    extra_params: dict[str, Any] | None = ...,
) -> None: ...


@overload
async def execute_activities_in_parallel(
    activity: Callable[..., Awaitable[U]],
    *,
    items: list[Any] | None = ...,
    get_item_from_prev_item_activity: _Activity | None = ...,
    get_item_from_index_activity: _Activity | None = ...,
    n_items: int | None = ...,
    max_concurrent_scheduled_tasks: int = ...,
    max_concurrent_executions_per_worker: int = ...,
    extra_params: dict[str, Any] | None = ...,
) -> list[U]: ...


async def execute_activities_in_parallel(
    activity: _Activity,
    *,
    items: list[Any] | None = None,
    get_item_from_prev_item_activity: _Activity | None = None,
    get_item_from_index_activity: _Activity | None = None,
    n_items: int | None = None,
    max_concurrent_scheduled_tasks: int = DEFAULT_MAX_CONCURRENT_SCHEDULED_TASKS,
    max_concurrent_executions_per_worker: int = DEFAULT_MAX_CONCURRENT_EXECUTIONS_PER_WORKER,
    extra_params: dict[str, Any] | None = None,
) -> list[Any] | None:
    """Run ``activity`` once per item, in parallel; the results in the items' order.

    Give exactly one source of items: ``items`` (a list), ``get_item_from_prev_item_activity``
    (an activity returning the item after the one it is given, starting from None, and None
    at the end), or ``get_item_from_index_activity`` with ``n_items`` (an activity taking a
    `GetItemFromIndexParams`). Each item is the activity's single argument, or, for an
    activity with several parameters, a dict of its arguments by name.

    Example::

        @workflows.activity()
        async def summarize(doc: Document) -> Summary: ...

        summaries = await workflows.execute_activities_in_parallel(
            summarize, items=documents, max_concurrent_scheduled_tasks=10
        )

    Args:
        activity: the ``@workflows.activity`` to run on each item.
        items: the items (the list executor).
        get_item_from_prev_item_activity: the chain executor's fetcher.
        get_item_from_index_activity: the offset executor's fetcher, called with indexes
            ``0 .. n_items - 1``.
        n_items: how many items the offset executor fetches.
        max_concurrent_scheduled_tasks: the most activity calls in flight at once.
        max_concurrent_executions_per_worker: Mistral's batch size across workers; accepted,
            it has no effect on one machine.
        extra_params: passed to the offset fetcher (`GetItemFromIndexParams.extra_params`)
            and to an activity whose single parameter is an `ExtraItemParams` model.

    Returns:
        The results in the items' order, or None when the activity returns None.

    Raises:
        ApplicationError: (non-retryable, as in Mistral) no activity, no source of items, or
            an item that does not fit the activity's parameters; the run fails.
    """
    definition = _activity(activity, "activity")
    if max_concurrent_scheduled_tasks < 1:
        raise _refused("max_concurrent_scheduled_tasks must be at least 1")
    runner = _Runner(activity, definition, extra_params, max_concurrent_scheduled_tasks)
    if items is not None:
        results = await runner.over_items(items)
    elif get_item_from_prev_item_activity is not None:
        _activity(get_item_from_prev_item_activity, "get_item_from_prev_item_activity")
        results = await runner.over_chain(get_item_from_prev_item_activity)
    elif get_item_from_index_activity is not None and n_items is not None:
        _activity(get_item_from_index_activity, "get_item_from_index_activity")
        results = await runner.over_indexes(get_item_from_index_activity, n_items)
    else:
        raise _refused(
            "give one source of items: items=[...] (list), get_item_from_prev_item_activity= "
            "(chain), or get_item_from_index_activity= with n_items= (offset pagination)"
        )
    return None if runner.returns_nothing else results


class _Runner:
    """One fan-out: how an item becomes a call, and the bound on calls in flight."""

    def __init__(
        self,
        activity: _Activity,
        definition: ActivityDefinition,
        extra_params: dict[str, Any] | None,
        limit: int,
    ) -> None:
        self._activity = activity
        self._definition = definition
        self._extra_params = extra_params
        self._limit = limit
        signature = definition.signature
        parameters = [
            p for p in signature.parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        spreads = any(p.kind is p.VAR_KEYWORD for p in signature.parameters)
        if not parameters and not spreads:
            raise _refused(
                f"activity {definition.name!r} takes no parameter, so the items would be ignored"
            )
        #: The one parameter each item is, or None when items are dicts of arguments by name.
        self._single = parameters[0].name if len(parameters) == 1 and not spreads else None
        self.returns_nothing = signature.result_annotation in (None, NoneType)
        from . import concurrency_types  # pydantic, which only workflow code needs here

        self._types = concurrency_types

    def item(self, index: int, raw: Any) -> Any:
        """``raw`` checked against the activity's parameters, as its call would check it."""
        name = self._definition.name
        signature = self._definition.signature
        if self._single is None and not isinstance(raw, Mapping):
            raise _refused(
                f"item {index} must be a dict of arguments by name for activity {name!r} "
                f"(it takes several parameters), not {type(raw).__name__}"
            )
        args, kwargs = ((), dict(raw)) if self._single is None else ((raw,), {})
        subject = f"item {index} of activity {name!r}"
        try:
            values = signature.decode_input(
                encode_arguments(signature.bind(args, kwargs), subject=subject)
            )
        except WfrunError as exc:
            raise _refused(f"{subject} does not fit its parameters: {exc}") from None
        if self._single is None:
            return raw
        value = values[self._single]
        if isinstance(value, self._types.ExtraItemParams):
            value = value.model_copy(update={"extra_params": self._extra_params})
        return value

    def call(self, item: Any) -> Awaitable[Any]:
        if self._single is None:
            return self._activity(**item)
        return self._activity(item)

    async def over_items(self, items: list[Any]) -> list[Any]:
        checked = [self.item(i, raw) for i, raw in enumerate(items)]  # all, before any call
        semaphore = asyncio.Semaphore(self._limit)
        async with _first_failure() as group:
            tasks = [
                group.create_task(_limited(semaphore, functools.partial(self.call, item)))
                for item in checked
            ]
        return [task.result() for task in tasks]

    async def over_indexes(self, fetch: _Activity, count: int) -> list[Any]:
        async def one(index: int) -> Any:
            params = self._types.GetItemFromIndexParams(idx=index, extra_params=self._extra_params)
            raw = await fetch(params)
            return await self.call(self.item(index, raw))

        semaphore = asyncio.Semaphore(self._limit)
        async with _first_failure() as group:
            tasks = [
                group.create_task(_limited(semaphore, functools.partial(one, index)))
                for index in range(count)
            ]
        return [task.result() for task in tasks]

    async def over_chain(self, fetch_next: _Activity) -> list[Any]:
        # Discovery is sequential (each item comes from the one before); the calls run in
        # parallel as the items arrive.
        semaphore = asyncio.Semaphore(self._limit)
        tasks: list[asyncio.Task[Any]] = []
        async with _first_failure() as group:
            raw = await fetch_next(None)
            while raw is not None:
                call = functools.partial(self.call, self.item(len(tasks), raw))
                tasks.append(group.create_task(_limited(semaphore, call)))
                raw = await fetch_next(raw)
        return [task.result() for task in tasks]


@contextlib.asynccontextmanager
async def _first_failure() -> AsyncIterator[asyncio.TaskGroup]:
    """A task group that raises its first failure as it is, not wrapped in a group.

    A task group rather than gather: the first failure cancels the calls still in flight, as
    Mistral's executors do, instead of leaving them running for nobody. The workflow sees the
    `ActivityError` itself, so that an unhandled one fails the run as any other would.
    """
    failure: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as errors:
        failure = errors.exceptions[0]
    if failure is not None:
        raise failure


async def _limited(semaphore: asyncio.Semaphore, call: Callable[[], Awaitable[Any]]) -> Any:
    async with semaphore:
        return await call()


def _activity(fn: Any, role: str) -> ActivityDefinition:
    definition = activity_definition_of(fn)
    if definition is None:
        what = getattr(fn, "__qualname__", None) or repr(fn)
        raise _refused(
            f"`{role}` must be an activity: decorate {what} with @workflows.activity"
            + (" (it is a coroutine function)" if inspect.iscoroutinefunction(fn) else "")
        )
    return definition


def _refused(message: str) -> WfrunError:
    return ApplicationError(f"execute_activities_in_parallel: {message}", non_retryable=True)
