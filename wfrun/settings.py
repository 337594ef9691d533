"""wfrun's environment variables, read in one place, each failing one way.

A value that does not parse is a `UsageError` (exit 2) naming the variable, what it holds and
what it takes, raised before anything runs; never a traceback, never a silent default.

- ``WFRUN_HOME``: where runs live (``./.wfrun``);
- ``WFRUN_MAX_PAYLOAD``: the limit on each encoded input and output (2 MiB);
- ``WFRUN_ACTIVITY_THREADS``: worker threads for plain ``def`` activities (32);
- ``WFRUN_BLOCKING_THRESHOLD``: seconds an async activity may block the event loop before it
  is named on stderr (0.25; 0 turns it off);
- ``WFRUN_CONTINUE_AS_NEW_AT``: how many events a history holds before
  ``workflow.should_continue_as_new()`` turns true (10000); each run keeps the value it
  started with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from .errors import InputError, UsageError
from .events import LIMIT

HOME_ENV: Final = "WFRUN_HOME"
MAX_PAYLOAD_ENV: Final = "WFRUN_MAX_PAYLOAD"
THREADS_ENV: Final = "WFRUN_ACTIVITY_THREADS"
BLOCKING_ENV: Final = "WFRUN_BLOCKING_THRESHOLD"
CONTINUE_AS_NEW_ENV: Final = "WFRUN_CONTINUE_AS_NEW_AT"

DEFAULT_HOME: Final = ".wfrun"
#: 2 MiB of encoded JSON per payload, as the Mistral Workflows service enforces it.
DEFAULT_MAX_PAYLOAD: Final = 2 * 1024 * 1024
DEFAULT_THREADS: Final = 32
DEFAULT_BLOCKING_THRESHOLD: Final = 0.25
#: Replay of 10,000 events takes well under a second; Temporal suggests a new run at 4 Ki
#: events because its histories travel over the network, which wfrun's do not.
DEFAULT_CONTINUE_AS_NEW_AT: Final = 10_000


def home(given: str | os.PathLike[str] | None = None) -> Path:
    """``given`` if set, else ``$WFRUN_HOME``, else ``./.wfrun``."""
    return Path(home_text(given))


def home_text(given: str | os.PathLike[str] | None = None) -> str:
    """`home` as the text it is made from (a key for what is kept per home)."""
    return os.fspath(given) if given else os.environ.get(HOME_ENV) or DEFAULT_HOME


def max_payload() -> int:
    """The payload limit in bytes: ``$WFRUN_MAX_PAYLOAD`` (``8MiB``, ``512KiB``, bytes)."""
    text = os.environ.get(MAX_PAYLOAD_ENV)
    if not text:
        return DEFAULT_MAX_PAYLOAD
    try:
        return parse_size(text)
    except UsageError as exc:
        raise _bad(MAX_PAYLOAD_ENV, text, "a positive size: 8MiB, 512KiB, 2097152") from exc


def activity_threads() -> int:
    """How many worker threads run plain ``def`` activities."""
    return _whole_number(THREADS_ENV, DEFAULT_THREADS, "threads")


def blocking_threshold() -> float:
    """Seconds an async activity may block the event loop before the watchdog names it."""
    text = os.environ.get(BLOCKING_ENV)
    if not text:
        return DEFAULT_BLOCKING_THRESHOLD
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise _bad(BLOCKING_ENV, text, "a number of seconds, 0 to turn the warning off")
    return seconds


def continue_as_new_at() -> int:
    """How many events make ``workflow.should_continue_as_new()`` true in a new run."""
    return _whole_number(CONTINUE_AS_NEW_ENV, DEFAULT_CONTINUE_AS_NEW_AT, "events")


def _whole_number(name: str, default: int, unit: str) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= LIMIT:
        raise _bad(name, text, f"a whole number of {unit}, 1 or more")
    return number


def format_size(size: int) -> str:
    """``2.0 MiB``, ``512 KiB``, ``17 B``."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} B"


def parse_size(text: str) -> int:
    """``"2MiB"``, ``"512KiB"``, ``"4MB"``, ``"100000"`` → bytes."""
    cleaned = text.strip().replace(" ", "").replace("_", "")
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
    lowered = cleaned.lower()
    for unit, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if lowered.endswith(unit):
            number, multiplier = lowered[: -len(unit)], factor
            break
    else:
        number, multiplier = lowered.removesuffix("b"), 1
    try:
        size = int(float(number) * multiplier)
    except (ValueError, OverflowError):  # "abc", "nan", "inf", "1e400"
        raise InputError(
            f"payload limit {text!r} is not a size: write bytes (2097152) or 2MiB, 512KiB"
        ) from None
    if size <= 0:
        raise InputError(f"payload limit {text!r} must be positive")
    if size > LIMIT:
        raise InputError(f"payload limit {text!r} is over the largest a history holds (10 GB)")
    return size


def check() -> None:
    """Read every setting once, so that a bad one stops a command before anything runs."""
    max_payload()
    activity_threads()
    blocking_threshold()
    continue_as_new_at()


def _bad(name: str, value: str, takes: str) -> UsageError:
    return UsageError(f"${name} is {value!r}, which is not {takes}; fix or unset it")
