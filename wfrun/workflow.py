"""``workflows.workflow``: defining workflows, and what workflow code may call.

Workflow code is replayed after a crash, so it must make the same decisions every time: the
helpers here give it time, randomness, ids and waiting that replay identically. Everything that
touches the world belongs in an ``@workflows.activity``.

Example::

    import wfrun as workflows

    @workflows.workflow.define(name="user_report")
    class UserReportWorkflow:
        @workflows.workflow.entrypoint
        async def run(self, user_id: str) -> dict:
            user = await fetch_user_data(user_id)
            await workflows.workflow.sleep(timedelta(hours=1))   # durable: survives a crash
            return await generate_report(user)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random as _random
import warnings
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    MutableMapping,
    Sequence,
)
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload
from uuid import UUID

from .concurrency import execute_activities_in_parallel
from .definitions import WorkflowDefinition, require_workflow_definition
from .errors import ClusterOnlyWarning, DefinitionError, UsageError
from .events import LIMIT
from .policy import duration
from .runtime import WorkflowInfo, current_workflow, require_workflow

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "as_completed",
    "define",
    "entrypoint",
    "execute_activities_in_parallel",
    "get_execution_id",
    "info",
    "logger",
    "now",
    "patched",
    "query",
    "random",
    "signal",
    "sleep",
    "unsafe",
    "update",
    "uuid4",
    "wait",
    "wait_condition",
]

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


# -- definition ------------------------------------------------------------------------------


@overload
def define(cls: C, /) -> C: ...


@overload
def define(
    cls: None = None,
    /,
    *,
    name: str | None = None,
    workflow_description: str | None = None,
    workflow_display_name: str | None = None,
    execution_timeout: timedelta | float | None = None,
    determinism_warnings: bool = True,
    failure_exception_types: tuple[str, ...] | list[str] = (),
    enforce_determinism: bool | None = None,
    schedules: Sequence[Any] | None = None,
) -> Callable[[C], C]: ...


def define(
    cls: type | None = None,
    /,
    *,
    name: str | None = None,
    workflow_description: str | None = None,
    workflow_display_name: str | None = None,
    execution_timeout: timedelta | float | None = None,
    determinism_warnings: bool = True,
    failure_exception_types: tuple[str, ...] | list[str] = (),
    enforce_determinism: bool | None = None,
    schedules: Sequence[Any] | None = None,
) -> Any:
    """Declare a workflow class; exactly one of its methods is the `entrypoint`.

    Args:
        name: the workflow's name in histories and on the command line (default: the class
            name). ``wfrun start file.py:NAME`` accepts it as well as the class name.
        workflow_description: free text, shown by ``wfrun show``.
        workflow_display_name: a human-friendly title.
        execution_timeout: the whole run's limit (a timedelta or seconds), counted from its
            start (resumes included); past it, what is in flight is cancelled and the run
            ends TIMED_OUT.
        determinism_warnings: warn when the workflow's code calls ``time.time``,
            ``datetime.now``, ``random`` or ``uuid4`` directly.
        failure_exception_types: exception class names that, unhandled, fail the run as
            ``ApplicationError`` and ``ActivityError`` do. Any other exception is taken for a
            bug: the run stops BLOCKED, and carries on once the code is fixed.
        enforce_determinism: Mistral's switch for its sandbox. wfrun has no sandbox: True
            (or None) keeps the warnings above, False turns them off, as
            ``determinism_warnings=False`` does. A history mismatch is still an error.
        schedules: Mistral's cron schedules (deprecated there); a cluster runs them. Accepted
            with a `ClusterOnlyWarning`: on one machine, run ``wfrun start`` from cron.
    """

    def decorate(target: type) -> type:
        if not inspect.isclass(target):
            raise DefinitionError(f"@workflows.workflow.define decorates a class, not {target!r}")
        timeout = None if execution_timeout is None else duration(execution_timeout)
        if timeout is not None and not timedelta(0) < timeout <= timedelta(seconds=LIMIT):
            raise DefinitionError(
                f"workflow {name or target.__name__!r}: execution_timeout must be positive and "
                "at most about 317 years (1e10 s)"
            )
        entry = _find_entrypoint(target)
        if schedules:
            _note_schedules(name or target.__name__)
        target.__wfrun_workflow__ = WorkflowDefinition(  # type: ignore[attr-defined]
            target,
            name=name or target.__name__,
            entrypoint=entry,
            description=workflow_description,
            display_name=workflow_display_name,
            execution_timeout=timeout,
            determinism_warnings=determinism_warnings and enforce_determinism is not False,
            handlers=_find_handlers(target),
            failure_exception_types=tuple(failure_exception_types),
        )
        return target

    if cls is not None:
        return decorate(cls)
    return decorate


def _note_schedules(workflow: str) -> None:
    warnings.warn(
        f"workflow {workflow!r}: schedules only run on a cluster; on one machine, run "
        f"`wfrun start TARGET --run-id {workflow}-$(date +%F)` from cron instead",
        ClusterOnlyWarning,
        stacklevel=3,
    )


def entrypoint(fn: F) -> F:
    """Mark the ``async`` method that runs the workflow; its parameters are the input."""
    if not inspect.iscoroutinefunction(fn):
        raise DefinitionError(
            f"@workflows.workflow.entrypoint needs an async method; "
            f"{getattr(fn, '__qualname__', fn)!r} is not one"
        )
    fn.__wfrun_entrypoint__ = True  # type: ignore[attr-defined]
    return fn


@overload
def signal(fn: F, /) -> F: ...


@overload
def signal(
    fn: None = None, /, *, name: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...


def signal(
    fn: F | None = None, /, *, name: str | None = None, description: str | None = None
) -> Any:
    """Mark a method (sync or async) that handles a signal: a one-way message to the run.

    ``wfrun signal RUN NAME '{"arg": ...}'`` (or `signal_workflow`) delivers it; the handler
    runs inside the workflow, is recorded as ``SignalReceived`` at the point the workflow
    observed it, and runs there again on replay. It usually changes the workflow's state, for
    a `wait_condition` to see (``description``, Mistral's label for its console, is accepted)::

        @workflows.workflow.signal
        def approve(self, approver: str) -> None:
            self.approved_by = approver
    """
    return _handler("signal", fn, name)


@overload
def query(fn: F, /) -> F: ...


@overload
def query(
    fn: None = None, /, *, name: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...


def query(
    fn: F | None = None, /, *, name: str | None = None, description: str | None = None
) -> Any:
    """Mark a sync method that answers a query from the run's state.

    ``wfrun query RUN NAME`` (or `query_workflow`) replays the run's history and calls it: no
    activity runs, nothing is recorded, and it works on a live, waiting or finished run.
    """
    return _handler("query", fn, name)


@overload
def update(fn: F, /) -> F: ...


@overload
def update(
    fn: None = None, /, *, name: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...


def update(
    fn: F | None = None, /, *, name: str | None = None, description: str | None = None
) -> Any:
    """Mark a method (sync or async) that handles an update: a signal that answers its sender.

    ``wfrun update RUN NAME '{...}'`` (or `update_workflow`) delivers it as a signal is and
    prints what the handler returns. An optional validator, registered with
    ``@handler.validator``, runs first and may refuse it by raising: a refused update is
    recorded as such and changes nothing::

        @workflows.workflow.update
        def set_quantity(self, quantity: int) -> int:
            self.quantity = quantity
            return self.quantity

        @set_quantity.validator
        def _positive(self, quantity: int) -> None:
            if quantity < 1:
                raise ValueError("quantity must be positive")
    """
    return _handler("update", fn, name)


def _handler(kind: str, fn: Any, name: str | None) -> Any:
    def decorate(method: Any) -> Any:
        if not inspect.isfunction(method):
            raise DefinitionError(f"@workflows.workflow.{kind} decorates a method, not {method!r}")
        if kind == "query" and inspect.iscoroutinefunction(method):
            raise DefinitionError(
                f"query {method.__qualname__} must be a plain def: a query reads the run's "
                "state and may not wait for anything"
            )
        method.__wfrun_handler__ = (kind, name or method.__name__)  # type: ignore[attr-defined]
        if kind == "update":

            def validator(check: Any) -> Any:
                method.__wfrun_validator__ = check  # type: ignore[attr-defined]
                return check

            method.validator = validator  # type: ignore[attr-defined]
        return method

    return decorate(fn) if fn is not None else decorate


def _find_handlers(cls: type) -> dict[tuple[str, str], Callable[..., Any]]:
    found: dict[tuple[str, str], Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for member in vars(klass).values():
            key = getattr(member, "__wfrun_handler__", None)
            if key is None:
                continue
            if key in found and found[key].__name__ != member.__name__:
                raise DefinitionError(
                    f"workflow class {cls.__qualname__} has two {key[0]}s named {key[1]!r}"
                )
            found[key] = member
    return found


def _find_entrypoint(cls: type) -> Callable[..., Any]:
    found = [
        member
        for klass in reversed(cls.__mro__)
        for member in vars(klass).values()
        if getattr(member, "__wfrun_entrypoint__", False)
    ]
    unique = list(dict.fromkeys(found))
    if len(unique) != 1:
        problem = "has no" if not unique else "has more than one"
        raise DefinitionError(
            f"workflow class {cls.__qualname__} {problem} @workflows.workflow.entrypoint "
            "method: mark exactly one async method"
        )
    entry: Callable[..., Any] = unique[0]
    return entry


# -- inside a workflow -----------------------------------------------------------------------


def now() -> datetime:
    """The workflow's current time (UTC): the time of the event being processed.

    It moves only when the workflow receives something (an activity result, a timer), and a
    replay sees exactly the same values.
    """
    return require_workflow("workflows.workflow.now()").now()


def random() -> _random.Random:
    """The run's own ``random.Random``, seeded once per run: same numbers on replay."""
    return require_workflow("workflows.workflow.random()").random()


def uuid4() -> UUID:
    """A random UUID drawn from the run's seeded generator: the same one on replay."""
    return require_workflow("workflows.workflow.uuid4()").uuid4()


def info() -> WorkflowInfo:
    """The running workflow's run id, name and start time."""
    return require_workflow("workflows.workflow.info()").info()


def get_execution_id() -> str:
    """The running workflow's run id (Mistral's name for ``info().run_id``)."""
    return require_workflow("workflows.workflow.get_execution_id()").info().run_id


def sleep(duration: timedelta | float, *, summary: str | None = None) -> Coroutine[Any, Any, None]:
    """A durable timer: ``await workflows.workflow.sleep(timedelta(hours=1))``.

    Recorded in the history; a run resumed after a crash waits only the time that is left.
    ``summary`` (Temporal's label for a timer) is accepted; it has no local effect.
    """
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    return require_workflow("workflows.workflow.sleep()").sleep(seconds)


def wait_condition(
    predicate: Callable[[], bool],
    timeout: timedelta | float | None = None,
    *,
    summary: str | None = None,
) -> Coroutine[Any, Any, None]:
    """Wait until ``predicate()`` is true; ``asyncio.TimeoutError`` after ``timeout``.

    The predicate is checked each time the workflow has run as far as it can, so it should
    only read the workflow's own state.
    """
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    return require_workflow("workflows.workflow.wait_condition()").wait_condition(
        predicate, seconds
    )


def patched(patch_id: str) -> bool:
    """Ship a change to workflow code without breaking the runs already in flight.

    True in new runs (and in replays of runs that took the new branch), False when replaying a
    run recorded before the change, which must keep following the old code::

        if workflows.workflow.patched("send-receipt"):
            await send_receipt(order)        # new code
    """
    return require_workflow("workflows.workflow.patched()").patched(patch_id)


async def execute_workflow(
    workflow: type, params: Any = None, *, execution_id: str | None = None
) -> Any:
    """Run another workflow as a child of this one, and return its result.

    The child is a run of its own, with its own history file and run id (``execution_id``,
    else one derived from this run's id), linked both ways: ``wfrun show`` of either names
    the other. This run records ``ChildWorkflowStarted`` and the child's end; on a resume a
    finished child is not run again, an unfinished one is carried on. A child that fails
    raises `WorkflowFailedError` here; cancelling this run cancels its children::

        receipt = await workflows.workflow.execute_workflow(ShipOrder, {"order_id": order_id})
    """
    definition = require_workflow_definition(workflow)
    runtime = require_workflow("workflows.workflow.execute_workflow()")
    return await runtime.execute_child(definition, params, execution_id)


def continue_as_new(params: Any = None) -> NoReturn:
    """End this run and carry on as a fresh run of the same workflow, started with ``params``.

    A loop that runs for months keeps its history (and its replay) small so. The new run is
    linked to this one; ``wfrun start``, ``resume`` and ``execute_workflow`` follow the chain
    and return its final result::

        if workflows.workflow.should_continue_as_new():
            workflows.workflow.continue_as_new({"cursor": cursor})
    """
    require_workflow("workflows.workflow.continue_as_new()").continue_as_new(params)


def should_continue_as_new() -> bool:
    """True once this run's history is long enough that it should `continue_as_new`
    (``$WFRUN_CONTINUE_AS_NEW_AT`` events, 10,000 unless set when the run started)."""
    return require_workflow("workflows.workflow.should_continue_as_new()").should_continue_as_new()


M = TypeVar("M", bound="BaseModel")


class InteractiveWorkflow:
    """Base class for workflows that ask a person for input (Mistral's human in the loop).

    ``await self.wait_for_input(Schema)`` waits for a value of the pydantic model
    ``Schema``. When the run has a terminal, wfrun asks for each field there (and asks again
    for what does not validate); otherwise the run waits, and
    ``wfrun signal RUN_ID LABEL '{"field": ...}'`` supplies it, validated against
    ``Schema`` before it is accepted::

        @workflows.workflow.define(name="expense")
        class Expense(workflows.InteractiveWorkflow):
            @workflows.workflow.entrypoint
            async def run(self, amount: int) -> bool:
                answer = await self.wait_for_input(Approval, label="approval")
                return answer.approved
    """

    @staticmethod
    async def wait_for_input(
        schema: type[M] | M,
        label: str | None = None,
        timeout: timedelta | float | None = None,  # noqa: ASYNC109 - Mistral's signature
    ) -> M:
        """Wait for an input of ``schema`` under ``label`` (default: the schema's class name).

        Raises `asyncio.TimeoutError` after ``timeout`` (a durable timer) without an answer.
        """
        from pydantic import BaseModel  # here: `import wfrun` stays light

        model = schema if isinstance(schema, type) else type(schema)
        if not issubclass(model, BaseModel):
            raise UsageError(
                f"wait_for_input takes a pydantic model class, not {model.__qualname__}"
            )
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        runtime = require_workflow("wait_for_input()")
        value: M = await runtime.wait_for_input(model, label or model.__name__, seconds)
        return value


async def wait(
    aws: Iterable[Awaitable[T]],
    *,
    timeout: timedelta | float | None = None,  # noqa: ASYNC109 - asyncio.wait's own signature
    return_when: str = asyncio.ALL_COMPLETED,
) -> tuple[list[asyncio.Future[T]], list[asyncio.Future[T]]]:
    """``asyncio.wait`` with lists instead of sets, in the order the awaitables were given.

    ``asyncio.wait`` also replays exactly on wfrun, but its sets make the order of ``done``
    arbitrary to read; these lists do not.
    """
    futures = [asyncio.ensure_future(aw) for aw in aws]
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    done, pending = await asyncio.wait(futures, timeout=seconds, return_when=return_when)
    return [f for f in futures if f in done], [f for f in futures if f in pending]


def as_completed(
    aws: Iterable[Awaitable[T]], *, timeout: timedelta | float | None = None
) -> Iterator[asyncio.Future[T]]:
    """``asyncio.as_completed`` that starts the awaitables in the order given.

    Needed for coroutines of your own ``async def`` helpers: the standard one starts them in
    an order that depends on memory addresses, which differs between a run and its replay.
    (Activity calls and tasks are safe with either.)
    """
    futures = [asyncio.ensure_future(aw) for aw in aws]
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    return asyncio.as_completed(futures, timeout=seconds)


class _Unsafe:
    """``workflows.workflow.unsafe``: Temporal's sandbox escape hatches, for code written for it.

    wfrun runs workflow code without a sandbox, so these change nothing here.
    """

    @staticmethod
    @contextlib.contextmanager
    def imports_passed_through() -> Iterator[None]:
        """Temporal passes the imports inside through its sandbox; wfrun has none to pass."""
        yield

    @staticmethod
    def is_replaying() -> bool:
        """Whether the workflow code is replaying what it did before (a resume)."""
        runtime = current_workflow()
        return runtime is not None and runtime.is_replaying


unsafe = _Unsafe()


class _WorkflowLogger(logging.LoggerAdapter[logging.Logger]):
    """``workflows.workflow.logger``: silent while a resume replays what was already logged."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("wfrun.workflow"), {})

    def isEnabledFor(self, level: int) -> bool:
        runtime = current_workflow()
        if runtime is not None and runtime.is_replaying:
            return False
        return self.logger.isEnabledFor(level)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        runtime = current_workflow()
        if runtime is not None:
            run = runtime.info()
            extra = {"run_id": run.run_id, "workflow": run.workflow_name}
            kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return msg, kwargs


logger = _WorkflowLogger()
