"""How an activity is attempted: its retry policy, the retry schedule and its timeouts.

The schedule is pure (no clock, no I/O, no state): the retry loop asks the policy how long to
wait, and waits itself. Field names follow Temporal's ``RetryPolicy`` so that a Temporal
backend maps them one to one;
the ``@activity`` decorator takes them under Mistral Workflows' flat names
(``retry_policy_max_attempts`` and so on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from .errors import DefinitionError
from .events import LIMIT

#: The longest time a history records (its numbers are bounded: see `wfrun.events.LIMIT`).
_LONGEST = timedelta(seconds=LIMIT)
_LONGEST_TEXT = "about 317 years (1e10 s)"


def duration(value: timedelta | float) -> timedelta:
    """A decorator's timeout or interval, as a timedelta.

    Mistral accepts a number of seconds wherever a timedelta goes.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DefinitionError(f"a duration is a timedelta or a number of seconds, not {value!r}")
    try:
        return timedelta(seconds=value)
    except OverflowError:
        raise DefinitionError(f"a duration of {value!r} seconds is too long") from None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed attempt is tried again."""

    #: Delay before the second attempt.
    initial_interval: timedelta = timedelta(seconds=1)
    #: Each further delay is the previous one times this.
    backoff_coefficient: float = 2.0
    #: No delay is longer than this.
    maximum_interval: timedelta = timedelta(seconds=100)
    #: Attempts in all: 1 means no retry, 0 means no limit (as in Temporal).
    maximum_attempts: int = 3
    #: Exception class names (or `ApplicationError` ``type``s) that are never retried.
    non_retryable_error_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.maximum_attempts < 0:
            raise DefinitionError("retry_policy_max_attempts must be 1 or more (0: no limit)")
        if self.backoff_coefficient < 1:
            raise DefinitionError("retry_policy_backoff_coefficient must be at least 1.0")
        if self.initial_interval < timedelta(0) or self.maximum_interval < timedelta(0):
            raise DefinitionError("retry intervals cannot be negative")
        if max(self.initial_interval, self.maximum_interval) > _LONGEST:
            raise DefinitionError(f"retry intervals cannot be longer than {_LONGEST_TEXT}")
        if isinstance(self.non_retryable_error_types, str):
            raise DefinitionError(
                "retry_policy_non_retryable_errors takes a sequence of class names, "
                f"not the string {self.non_retryable_error_types!r}"
            )

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one.

        ``min(initial * coefficient ** (attempt - 1), maximum_interval)``: with the defaults,
        1 s, 2 s, 4 s, … capped at 100 s.
        """
        initial = self.initial_interval.total_seconds()
        cap = self.maximum_interval.total_seconds()
        try:
            delay = initial * self.backoff_coefficient ** (attempt - 1)
        except OverflowError:
            return cap
        return min(delay, cap)

    def attempts_left(self, attempt: int) -> bool:
        """Whether another attempt may follow attempt ``attempt``."""
        return self.maximum_attempts == 0 or attempt < self.maximum_attempts

    def is_retryable(self, type_names: Iterable[str], non_retryable: bool) -> bool:
        """A failure is retried unless flagged non-retryable or one of its type names is listed.

        ``type_names`` holds the exception's class and base class names (and an
        `ApplicationError`'s ``type``), so listing ``"ValueError"`` also stops its subclasses.
        """
        if non_retryable:
            return False
        listed = set(self.non_retryable_error_types)
        return not any(name in listed for name in type_names)

    def next_delay(
        self, attempt: int, type_names: Iterable[str], non_retryable: bool
    ) -> float | None:
        """Seconds before the next attempt, or None when this failure is final."""
        if not self.is_retryable(type_names, non_retryable) or not self.attempts_left(attempt):
            return None
        return self.delay_after(attempt)


@dataclass(frozen=True, slots=True)
class ActivityOptions:
    """Everything the engine needs to attempt one activity."""

    #: The name recorded in the history.
    name: str
    #: One attempt's limit; past it the attempt is cancelled and counts as failed.
    start_to_close_timeout: timedelta = timedelta(minutes=5)
    #: With heartbeats: an attempt silent for longer than this fails.
    heartbeat_timeout: timedelta | None = None
    #: The whole call's limit, every attempt and retry delay included, counted from its
    #: scheduling (across resumes); None: only the retry policy bounds it.
    schedule_to_close_timeout: timedelta | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: This activity's payload limit in bytes; None: the run's limit.
    max_payload: int | None = None

    def __post_init__(self) -> None:
        if self.start_to_close_timeout <= timedelta(0):
            raise DefinitionError(
                f"activity {self.name!r}: start_to_close_timeout must be positive"
            )
        for option, value in (
            ("heartbeat_timeout", self.heartbeat_timeout),
            ("schedule_to_close_timeout", self.schedule_to_close_timeout),
        ):
            if value is not None and value <= timedelta(0):
                raise DefinitionError(f"activity {self.name!r}: {option} must be positive")
        given = (self.heartbeat_timeout, self.schedule_to_close_timeout)
        if max([self.start_to_close_timeout, *(t for t in given if t is not None)]) > _LONGEST:
            raise DefinitionError(
                f"activity {self.name!r}: a timeout cannot be longer than {_LONGEST_TEXT}"
            )
        if self.max_payload is not None and self.max_payload <= 0:
            raise DefinitionError(f"activity {self.name!r}: max_payload must be positive")


class RateLimit:
    """Mistral's limit on how often an activity runs, shared by every worker of a cluster.

    Accepted so that code written for Mistral runs unchanged: on one machine it has no effect,
    and ``@workflows.activity(rate_limit=...)`` says so with a `ClusterOnlyWarning`. Mistral's
    field names and bounds are kept (and its older ``max_calls`` spelling)::

        @workflows.activity(rate_limit=workflows.RateLimit(time_window_in_sec=1, max_execution=100))
        async def generate_chat_response(params: CompletionParams) -> dict: ...

    Attributes:
        time_window_in_sec: the window, in seconds (1 to 3600).
        max_execution: how many calls may start within a window (1 to 100,000).
        key: activities sharing a key share one limit; None: the activity's own.
    """

    __slots__ = ("key", "max_execution", "time_window_in_sec")

    def __init__(
        self,
        *,
        time_window_in_sec: int,
        max_execution: int | None = None,
        key: str | None = None,
        max_calls: int | None = None,
    ) -> None:
        if max_execution is None:
            max_execution = max_calls
        elif max_calls is not None and max_calls != max_execution:
            raise DefinitionError("RateLimit: give max_execution or max_calls, not both")
        if max_execution is None:
            raise DefinitionError("RateLimit needs max_execution: the calls allowed per window")
        for field_name, value, top in (
            ("time_window_in_sec", time_window_in_sec, 3600),
            ("max_execution", max_execution, 100_000),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise DefinitionError(
                    f"RateLimit: {field_name} must be from 1 to {top}, not {value!r}"
                )
        self.time_window_in_sec = time_window_in_sec
        self.max_execution = max_execution
        self.key = key

    def __repr__(self) -> str:
        return (
            f"RateLimit(time_window_in_sec={self.time_window_in_sec}, "
            f"max_execution={self.max_execution}, key={self.key!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RateLimit):
            return NotImplemented
        return (self.time_window_in_sec, self.max_execution, self.key) == (
            other.time_window_in_sec,
            other.max_execution,
            other.key,
        )

    def __hash__(self) -> int:
        return hash((self.time_window_in_sec, self.max_execution, self.key))
