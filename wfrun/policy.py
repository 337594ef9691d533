"""How an activity is attempted: its retry policy and its timeouts.

Field names follow Temporal's ``RetryPolicy`` so that a Temporal backend maps them one to one;
the ``@activity`` decorator takes them under Mistral Workflows' flat names
(``retry_policy_max_attempts`` and so on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from .errors import DefinitionError


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
        if isinstance(self.non_retryable_error_types, str):
            raise DefinitionError(
                "retry_policy_non_retryable_errors takes a sequence of class names, "
                f"not the string {self.non_retryable_error_types!r}"
            )


@dataclass(frozen=True, slots=True)
class ActivityOptions:
    """Everything the engine needs to attempt one activity."""

    #: The name recorded in the history.
    name: str
    #: One attempt's limit; past it the attempt is cancelled and counts as failed.
    start_to_close_timeout: timedelta = timedelta(minutes=5)
    #: With heartbeats: an attempt silent for longer than this fails.
    heartbeat_timeout: timedelta | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: This activity's payload limit in bytes; None: the run's limit.
    max_payload: int | None = None

    def __post_init__(self) -> None:
        if self.start_to_close_timeout <= timedelta(0):
            raise DefinitionError(
                f"activity {self.name!r}: start_to_close_timeout must be positive"
            )
        if self.heartbeat_timeout is not None and self.heartbeat_timeout <= timedelta(0):
            raise DefinitionError(f"activity {self.name!r}: heartbeat_timeout must be positive")
        if self.max_payload is not None and self.max_payload <= 0:
            raise DefinitionError(f"activity {self.name!r}: max_payload must be positive")
