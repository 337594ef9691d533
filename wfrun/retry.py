"""The retry schedule, as pure functions: no clock, no I/O, no state."""

from __future__ import annotations

from collections.abc import Iterable

from .policy import RetryPolicy


def delay_after(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one.

    ``min(initial * coefficient ** (attempt - 1), maximum_interval)``: with the defaults,
    1 s, 2 s, 4 s, … capped at 100 s.
    """
    initial = policy.initial_interval.total_seconds()
    cap = policy.maximum_interval.total_seconds()
    try:
        delay = initial * policy.backoff_coefficient ** (attempt - 1)
    except OverflowError:
        return cap
    return min(delay, cap)


def attempts_left(policy: RetryPolicy, attempt: int) -> bool:
    """Whether another attempt may follow attempt ``attempt``."""
    return policy.maximum_attempts == 0 or attempt < policy.maximum_attempts


def is_retryable(policy: RetryPolicy, type_names: Iterable[str], non_retryable: bool) -> bool:
    """A failure is retried unless flagged non-retryable or one of its type names is listed.

    ``type_names`` holds the exception's class and base class names (and an
    `ApplicationError`'s ``type``), so listing ``"ValueError"`` also stops its subclasses.
    """
    if non_retryable:
        return False
    listed = set(policy.non_retryable_error_types)
    return not any(name in listed for name in type_names)


def next_delay(
    policy: RetryPolicy, attempt: int, type_names: Iterable[str], non_retryable: bool
) -> float | None:
    """Seconds before the next attempt, or None when this failure is final."""
    if not is_retryable(policy, type_names, non_retryable) or not attempts_left(policy, attempt):
        return None
    return delay_after(policy, attempt)
