"""``@workflows.activity``: the steps of a workflow that touch the world.

The decorator is thin: calling the decorated function hands the call to the runtime seam
(`wfrun.runtime`). Inside a workflow, the workflow's runtime records it, runs it under its
retry policy and timeout, and returns its recorded result. Anywhere else the direct runtime
runs it, with its retry policy and no history, so activities stay unit-testable.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Coroutine, MutableMapping
from datetime import timedelta
from types import FunctionType
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload

from . import runtime as _runtime
from .definitions import ActivityDefinition
from .errors import ClusterOnlyWarning, DefinitionError
from .policy import ActivityOptions, RateLimit, RetryPolicy, duration
from .runtime import ActivityInfo, activity_runtime, current_activity, require_activity

_getprofile = sys.getprofile
_setprofile = sys.setprofile

P = ParamSpec("P")
R = TypeVar("R")


def _activity(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    start_to_close_timeout: timedelta | float = timedelta(minutes=5),
    retry_policy_max_attempts: int | None = 3,
    retry_policy_backoff_coefficient: float = 2.0,
    retry_policy_initial_interval: timedelta | float = timedelta(seconds=1),
    retry_policy_max_interval: timedelta | float = timedelta(seconds=100),
    retry_policy_non_retryable_errors: tuple[str, ...] | list[str] = (),
    heartbeat_timeout: timedelta | float | None = None,
    schedule_to_close_timeout: timedelta | float | None = None,
    max_payload: int | None = None,
    display_name: str | None = None,
    rate_limit: RateLimit | None = None,
    sticky_to_worker: bool | None = None,
) -> Any:
    """Declare an activity: a module-level function a workflow calls to act on the world.

    Each call from a workflow is attempted up to ``retry_policy_max_attempts`` times in all,
    waiting ``min(initial * coefficient ** (n - 1), max_interval)`` after failed attempt n; an
    attempt past ``start_to_close_timeout`` is cancelled and counts as failed. Once an attempt
    succeeds its result is recorded and the call never runs again, even after a crash.
    ``async def`` activities run on the event loop; plain ``def`` ones in a worker thread.

    Example::

        @workflows.activity(start_to_close_timeout=timedelta(seconds=30),
                            retry_policy_max_attempts=5)
        async def fetch_user_data(user_id: str) -> dict:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"https://api.example.com/users/{user_id}")
                response.raise_for_status()
                return response.json()

    Args:
        name: the name recorded in the history (default: the function's name).
        start_to_close_timeout: one attempt's time limit (a timedelta, or seconds).
        retry_policy_max_attempts: attempts in all; 1 means no retry, 0 or None no limit.
        retry_policy_backoff_coefficient: growth of the delay between attempts.
        retry_policy_initial_interval: the delay after the first failed attempt.
        retry_policy_max_interval: the longest delay between attempts.
        retry_policy_non_retryable_errors: exception class names that fail the call at once.
        heartbeat_timeout: with `activity_heartbeat`, the longest silence of an attempt.
        schedule_to_close_timeout: the whole call's limit, all attempts and retry delays
            included, counted from when the workflow called it (resumes included); past it,
            or when the next retry would start past it, the call fails with a timeout.
        max_payload: this activity's limit on encoded input and output, in bytes.
        display_name: Mistral's label for logs and dashboards; accepted, not used here.
        rate_limit: Mistral's limit on calls across workers (a `RateLimit`); accepted, with a
            note, as it only matters on a cluster.
        sticky_to_worker: likewise (one process runs everything here).
    """

    def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.isfunction(target) or target.__qualname__ != target.__name__:
            raise DefinitionError(
                f"@workflows.activity takes a module-level function, not {_describe(target)}: "
                "the engine must find it again by name after a crash"
                + (_FOR_METHODS if _is_method(target) else "")
            )
        options = ActivityOptions(
            name=name or target.__name__,
            start_to_close_timeout=duration(start_to_close_timeout),
            heartbeat_timeout=duration(heartbeat_timeout) if heartbeat_timeout else None,
            schedule_to_close_timeout=duration(schedule_to_close_timeout)
            if schedule_to_close_timeout is not None
            else None,
            retry_policy=RetryPolicy(
                initial_interval=duration(retry_policy_initial_interval),
                backoff_coefficient=retry_policy_backoff_coefficient,
                maximum_interval=duration(retry_policy_max_interval),
                maximum_attempts=0
                if retry_policy_max_attempts is None
                else retry_policy_max_attempts,
                non_retryable_error_types=_names(retry_policy_non_retryable_errors),
            ),
            max_payload=max_payload,
        )
        definition = ActivityDefinition(target, options)
        for option, value in (("rate_limit", rate_limit), ("sticky_to_worker", sticky_to_worker)):
            if value is not None:
                warnings.warn(
                    f"activity {definition.name!r}: {option} only matters on a cluster; it has "
                    "no effect when wfrun runs on one machine",
                    ClusterOnlyWarning,
                    stacklevel=3,
                )

        call = functools.wraps(target)(_wrapper(definition))
        call.__wfrun_activity__ = definition  # type: ignore[attr-defined]
        return call

    if fn is not None:
        return decorate(fn)
    return decorate


def _wrapper(definition: ActivityDefinition) -> Callable[..., Coroutine[Any, Any, Any]]:
    """What calling an activity calls: the call handed to the runtime seam."""

    def call(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        if _suspended:
            hook = _suspended.pop(_get_ident(), None)
            if hook is not None:
                # The determinism guard's hook stepped out as this call began (Python 3.11,
                # see `runtime.guard_suspended`): back for the user's next line.
                try:
                    runtime = _workflow_or_none() or activity_runtime()
                    return runtime.call_activity(definition, args, kwargs)
                finally:
                    _setprofile(hook)
        hook = _getprofile()
        if (
            hook is None
            or hook.__class__ is not FunctionType
            or hook.__code__ is not _runtime.guard_hook_code
        ):
            return activity_runtime().call_activity(definition, args, kwargs)
        # In a workflow step the determinism guard watches (before Python 3.12): what the
        # call does is wfrun's own work, none of it for the guard's hook to see (attribute
        # reads above, no call: each would be an event for the hook).
        _setprofile(None)
        try:
            return activity_runtime().call_activity(definition, args, kwargs)
        finally:
            _setprofile(hook)

    return call


_suspended = _runtime.guard_suspended
_workflow_or_none = _runtime.workflow_or_none
_get_ident = threading.get_ident
# One code object for every activity's wrapper (each is a closure of it): the guard's hook
# knows an activity call by it.
_runtime.activity_call_code = _wrapper(cast("ActivityDefinition", None)).__code__


class _ActivityLogger(logging.LoggerAdapter[logging.Logger]):
    """``workflows.activity.logger`` (Temporal's ``activity.logger``): the ``wfrun.activity``
    logger, whose records inside an activity carry ``run_id``, ``activity``, ``activity_id``
    and ``attempt`` as extra fields (``%(run_id)s`` in a format string).

    Example::

        workflows.activity.logger.info("charging %s", order.id)
    """

    def __init__(self) -> None:
        super().__init__(logging.getLogger("wfrun.activity"), {})

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        context = current_activity()
        if context is not None:
            info = context.info
            extra = {
                "run_id": info.run_id,
                "activity": info.name,
                "activity_id": info.activity_id,
                "attempt": info.attempt,
            }
            kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return msg, kwargs


class _Activity(Protocol):
    """The type of `activity`: the decorator, typed so that users' signatures survive, which
    also carries Temporal's ``activity.logger``."""

    logger: _ActivityLogger

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        start_to_close_timeout: timedelta | float = ...,
        retry_policy_max_attempts: int | None = ...,
        retry_policy_backoff_coefficient: float = ...,
        retry_policy_initial_interval: timedelta | float = ...,
        retry_policy_max_interval: timedelta | float = ...,
        retry_policy_non_retryable_errors: tuple[str, ...] | list[str] = ...,
        heartbeat_timeout: timedelta | float | None = ...,
        schedule_to_close_timeout: timedelta | float | None = ...,
        max_payload: int | None = ...,
        display_name: str | None = ...,
        rate_limit: RateLimit | None = ...,
        sticky_to_worker: bool | None = ...,
    ) -> _Decorator: ...


activity = cast("_Activity", _activity)
activity.logger = _ActivityLogger()


class _Decorator(Protocol):
    """The type of ``activity(...)`` with options: typed so that users' signatures survive."""

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, Coroutine[Any, Any, R]]: ...


def activity_info() -> ActivityInfo:
    """The running attempt's `ActivityInfo`: run id, activity id, name, attempt, idempotency key.

    Example::

        info = workflows.activity_info()
        payments.charge(order, idempotency_key=info.idempotency_key)  # charged once
    """
    return require_activity("workflows.activity_info()").info


def activity_heartbeat(*details: Any) -> None:
    """Record the attempt's progress; with ``heartbeat_timeout``, also prove it is alive.

    The latest details are recorded (at most about once a second, so a tight loop does not
    flood the history) and the next attempt, after a failure or a crash, reads them from
    ``activity_info().heartbeat_details`` to carry on where this one stopped.

    Example::

        start = (workflows.activity_info().heartbeat_details or (0,))[0]
        for offset in range(start, size, CHUNK):
            download(url, offset)
            workflows.activity_heartbeat(offset + CHUNK)
    """
    require_activity("workflows.activity_heartbeat()").heartbeat(details)


def _names(names: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    # A lone string is a classic slip ("ValueError" instead of ("ValueError",)): let the
    # policy refuse it rather than turn it into a tuple of letters.
    return names if isinstance(names, str) else tuple(names)  # type: ignore[return-value]


_FOR_METHODS = (
    ". Activities that share a client (Temporal's class of activities) become module-level "
    "functions using a module-level client, e.g. `client = httpx.AsyncClient()` beside "
    "`@workflows.activity async def charge(amount: int) -> str: ...`"
)


def _is_method(target: Any) -> bool:
    qualname = getattr(target, "__qualname__", "")
    return inspect.isfunction(target) and "." in qualname.rsplit("<locals>.", 1)[-1]


def _describe(target: Any) -> str:
    if isinstance(target, (staticmethod, classmethod)):
        return f"a {type(target).__name__}"
    if inspect.isclass(target):
        return f"the class {target.__name__}"
    qualname = getattr(target, "__qualname__", None)
    if qualname and "<locals>" in qualname:
        return f"{qualname} (defined inside a function)"
    if qualname and "." in qualname:
        return f"the method {qualname}"
    return repr(target)
