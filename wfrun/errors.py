"""Every error wfrun raises, under one root.

    WfrunError                      exit
    ├── UsageError                    2   bad usage or input; nothing was run
    │   ├── DefinitionError           2   a decorator used where it cannot work
    │   ├── TargetError               2   TARGET names no loadable workflow
    │   ├── InputError                2   a workflow or activity input fails its type hints
    │   └── InvalidRunIdError         2   a run id outside [A-Za-z0-9._-]{1,128}
    ├── PayloadError                      a value that cannot travel through the history
    │   ├── EncodingError             1   not JSON-encodable (names the activity and the type)
    │   └── PayloadTooLargeError      1   over the per-payload limit (names side and size)
    ├── ApplicationError              1   raised by user code; `non_retryable` stops retries
    │   └── WorkflowError             1   Mistral Workflows' name for the same thing
    ├── ActivityError                 1   an activity failed for good (`__cause__`: last failure)
    ├── WorkflowFailedError           1   `execute_workflow` of a run (or a child run, inside a
    │                                     workflow) that ended FAILED, TIMED_OUT or CANCELED
    ├── NonDeterminismError           3   today's code disagrees with the recorded history
    ├── NotAwaitedError               3   workflow code called an activity, never awaited it
    ├── RunNotFoundError              4   no history for that run id
    ├── RunLockedError                5   another live process holds the run
    ├── HistoryCorruptError           6   the history file is damaged; nothing was changed
    └── HistoryIOError               74   the history cannot be read or written (disk full,
                                          read-only, permissions, not a regular file of
                                          yours); what was recorded is intact

Each class carries the exit code of the CLI (`exit_code`), so the command line maps errors to
codes in one place and a library user can ignore it. Every message says what happened, where,
and what to do next. Every error pickles with its attributes: errors cross process boundaries.

`DeterminismWarning` is a warning, not an error: workflow code called something whose result
changes on replay. `Failure` is how a history records an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any


class WfrunError(Exception):
    """Root of every error wfrun raises."""

    exit_code: int = 1

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles as cls(*args), which loses keyword-only attributes: restore the
        # message and the attributes as they are instead.
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[WfrunError], args: tuple[Any, ...], state: dict[str, Any]) -> WfrunError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class UsageError(WfrunError):
    """Bad usage or bad input, detected before anything ran."""

    exit_code = 2


class DefinitionError(UsageError):
    """A decorator was applied to something it cannot work with.

    The message starts with the user's file and line (``app.py:12: ...``): the first caller
    outside wfrun, the standard library and installed packages, when there is one.
    """

    def __init__(self, message: str) -> None:
        where = _users_line()
        super().__init__(f"{where}: {message}" if where else message)


class TargetError(UsageError):
    """A TARGET such as ``pkg.mod:Class`` or ``file.py:Class`` names no loadable workflow."""


class InputError(UsageError):
    """An input does not match the entrypoint's (or an activity's) type hints."""


class InvalidRunIdError(UsageError):
    """A run id that is not ``[A-Za-z0-9._-]{1,128}`` (this also rules out path traversal)."""


class PayloadError(WfrunError):
    """A value that cannot be recorded in the history."""


class EncodingError(PayloadError, TypeError):
    """A value that has no JSON encoding; the message names the activity and the type."""


class PayloadTooLargeError(PayloadError):
    """An encoded input or output over the payload limit (2 MiB unless configured).

    Attributes:
        activity: the activity whose payload it is (None for a workflow's input or result).
        workflow: the workflow whose input or result it is (None for an activity's payload).
        side: ``"input"`` or ``"output"``.
        size: the encoded size in bytes.
        limit: the limit in bytes.
    """

    def __init__(
        self,
        message: str,
        *,
        activity: str | None,
        side: str,
        size: int,
        limit: int,
        workflow: str | None = None,
    ) -> None:
        super().__init__(message)
        self.activity = activity
        self.workflow = workflow
        self.side = side
        self.size = size
        self.limit = limit


class ApplicationError(WfrunError):
    """An error raised on purpose by activity or workflow code.

    ``non_retryable=True`` fails an activity at once, with no further attempt. ``type`` names
    the original error class when wfrun rebuilds a failure from the history (an activity's
    last failure is always rebuilt this way, so a replayed run sees exactly what a live one did).

    Example::

        if response.status == 404:
            raise workflows.ApplicationError("user 42 does not exist", non_retryable=True)
    """

    def __init__(
        self,
        message: str = "",
        *details: Any,
        type: str | None = None,
        non_retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.type = type or self.__class__.__name__
        self.non_retryable = non_retryable

    def __str__(self) -> str:
        return self.message


class WorkflowError(ApplicationError):
    """Mistral Workflows' application error; behaves exactly as `ApplicationError`."""


class ActivityError(WfrunError):
    """An activity failed for good: its attempts are spent, or the failure was non-retryable.

    ``__cause__`` is the last failure, an `ApplicationError` whose ``type`` and ``message`` are
    those of the original exception.

    Attributes:
        activity: the activity's name.
        activity_id: its position among the run's commands (stable across resumes).
        attempts: how many attempts ran.
        retry_state: why it stopped: ``"MAXIMUM_ATTEMPTS_REACHED"``, ``"NON_RETRYABLE_FAILURE"``,
            or ``"TIMEOUT"`` (its ``schedule_to_close_timeout`` ran out).
    """

    def __init__(
        self, message: str, *, activity: str, activity_id: int, attempts: int, retry_state: str
    ) -> None:
        super().__init__(message)
        self.activity = activity
        self.activity_id = activity_id
        self.attempts = attempts
        self.retry_state = retry_state

    @property
    def cause(self) -> BaseException | None:
        """The last failure (Temporal's and Mistral's name for ``__cause__``)."""
        return self.__cause__


class WorkflowFailedError(WfrunError):
    """A run ended FAILED: raised by `execute_workflow` and `resume_workflow`.

    ``__cause__`` is the workflow's error rebuilt from the history (an `ApplicationError`
    carrying the original type name and message).
    """

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class NonDeterminismError(WfrunError):
    """The workflow code asked for a different step than the history recorded.

    Attributes:
        run_id: the run being replayed.
        event_id: the id of the history event where code and history part ways.
        recorded: what the history holds there (a short description).
        requested: what the code asked for instead.
    """

    exit_code = 3

    def __init__(
        self, message: str, *, run_id: str, event_id: int | None, recorded: str, requested: str
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.event_id = event_id
        self.recorded = recorded
        self.requested = requested


class NotAwaitedError(WfrunError):
    """Workflow code called an activity and never awaited the call (a forgotten ``await``).

    Never a silently dropped step: the run stops BLOCKED with this error, nothing of the step
    that lost the call is recorded, and once ``await`` is added ``resume`` carries on.

    Attributes:
        activity: the activity's name.
        where: the file and line of the call.
    """

    exit_code = 3

    def __init__(self, message: str, *, activity: str, where: str) -> None:
        super().__init__(message)
        self.activity = activity
        self.where = where


class RunNotFoundError(WfrunError):
    """No history file exists for that run id under the wfrun home."""

    exit_code = 4


class RunLockedError(WfrunError):
    """Another live process is executing the run; it is never run twice at once."""

    exit_code = 5


class HistoryCorruptError(WfrunError):
    """The history file is damaged beyond a torn last line; nothing was run or changed.

    Attributes:
        path: the history file.
        line: the 1-based line number of the damage.
    """

    exit_code = 6

    def __init__(self, message: str, *, path: str, line: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class HistoryIOError(WfrunError):
    """The history cannot be read or written, or is not to be trusted; nothing recorded is lost.

    Raised for a full disk, a read-only or failing disk, missing permissions, and for a run
    file or runs folder that others could have written (a run file names code to import).
    ``resume`` continues the run once the cause is fixed.

    Attributes:
        path: the file or folder at fault.
    """

    exit_code = 74

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ContinueAsNewError(BaseException):
    """Raised by `workflows.workflow.continue_as_new`: it ends the run, which hands over to a
    fresh run of the same workflow with ``input``.

    A `BaseException`, as in Temporal, so that an ``except Exception`` in workflow code does
    not swallow it by accident.
    """

    def __init__(self, input_data: bytes) -> None:
        super().__init__("the workflow continues as a new run")
        self.input = input_data


class ClusterOnlyWarning(UserWarning):
    """An option (Mistral's ``rate_limit``, ``sticky_to_worker``) that only a cluster uses."""


class DeterminismWarning(UserWarning):
    """Workflow code called something whose result differs between live run and replay."""


# -- failures as the history records them ----------------------------------------------------

_TRACEBACK_LIMIT = 8_000
#: The attributes of a `PayloadTooLargeError` that its record keeps, so replay rebuilds it.
_PAYLOAD_FIELDS = ("activity", "workflow", "side", "size", "limit")


@dataclass(frozen=True, slots=True)
class Failure:
    """An exception as a history records it: type name, message, traceback.

    The record is a JSON object (``{"type": ..., "message": ...}``); `rebuild` gives the
    exception workflow code sees for it, identical live and on replay.
    """

    type: str
    message: str
    non_retryable: bool = False
    traceback: str | None = None
    #: A `PayloadTooLargeError`'s attributes (activity, workflow, side, size, limit).
    payload: dict[str, Any] | None = None

    @classmethod
    def of(cls, exc: BaseException, *, non_retryable: bool = False) -> Failure:
        """The failure ``exc`` stands for; ``non_retryable`` forces the flag on."""
        import traceback

        text = None
        if exc.__traceback__ is not None:
            frames = _users_frames(exc.__traceback__)
            text = "".join(traceback.format_exception(type(exc), exc, frames))
            text = text[-_TRACEBACK_LIMIT:]
        # Any exception flagged so, as Temporal's own ApplicationError is (Mistral code raises it).
        flagged = getattr(exc, "non_retryable", False) is True
        payload = None
        if isinstance(exc, PayloadTooLargeError):
            payload = {name: getattr(exc, name) for name in _PAYLOAD_FIELDS}
        return cls(failure_type(exc), str(exc), non_retryable or flagged, text, payload)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Failure:
        payload = None
        if record.get("type") == "PayloadTooLargeError" and "size" in record:
            payload = {name: record.get(name) for name in _PAYLOAD_FIELDS}
        traceback = record.get("traceback")
        return cls(
            type=str(record.get("type", "Error")),
            message=str(record.get("message", "")),
            non_retryable=bool(record.get("non_retryable", False)),
            traceback=traceback if isinstance(traceback, str) else None,
            payload=payload,
        )

    def record(self, *, with_traceback: bool = True) -> dict[str, Any]:
        """The JSON object the history stores."""
        record: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.payload is not None:
            record.update(self.payload)
        if self.non_retryable:
            record["non_retryable"] = True
        if with_traceback and self.traceback is not None:
            record["traceback"] = self.traceback
        return record

    def describe(self) -> str:
        """``ValueError: boom``."""
        return f"{self.type}: {self.message}" if self.message else self.type

    def rebuild(self) -> ApplicationError:
        """The exception a workflow sees for this failure, identical live and on replay.

        It is an `ApplicationError` of a class named like the original (``PaymentDeclined``,
        ``ValueError``), so that tracebacks, ``repr`` and ``type(e).__name__`` name the user's
        type; the recorded traceback is attached as a note, which tracebacks print.
        """
        error = failure_class(self.type)(
            self.message, type=self.type, non_retryable=self.non_retryable
        )
        if self.traceback:
            error.add_note("The original traceback, as the history recorded it:\n" + self.traceback)
        return error

    def rebuild_payload_error(self) -> PayloadTooLargeError | None:
        """The `PayloadTooLargeError` this failure stands for, if it is one (the spec's
        promise: the workflow sees that error, live and on replay)."""
        if self.payload is None:
            return None
        return PayloadTooLargeError(
            self.message,
            activity=self.payload.get("activity"),
            workflow=self.payload.get("workflow"),
            side=str(self.payload.get("side")),
            size=int(self.payload["size"]),
            limit=int(self.payload.get("limit") or 0),
        )


def failure_type(exc: BaseException) -> str:
    if isinstance(exc, ApplicationError):
        return exc.type
    return type(exc).__name__


def failure_type_names(exc: BaseException) -> list[str]:
    """The names a retry policy can list to stop retrying ``exc``: its type and its bases."""
    names = [cls.__name__ for cls in type(exc).__mro__ if cls not in (BaseException, object)]
    if isinstance(exc, ApplicationError):
        names.insert(0, exc.type)
    return names


# -- failures rebuilt under their original type's name ---------------------------------------

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_REBUILT: dict[str, type[ApplicationError]] = {}


def failure_class(name: str) -> type[ApplicationError]:
    """The `ApplicationError` subclass named ``name`` that stands for a recorded failure.

    One class per name and process, so ``type(a) is type(b)`` holds for two failures of one
    type. It claims the module ``builtins`` so that a traceback prints ``PaymentDeclined: ...``
    rather than a module path that does not hold it.
    """
    if name in ("ApplicationError", "WorkflowError") or not name.isidentifier():
        return WorkflowError if name == "WorkflowError" else ApplicationError
    cls = _REBUILT.get(name)
    if cls is None:
        namespace = {
            "__module__": "builtins",
            "__qualname__": name,
            "__doc__": f"A recorded {name} failure, rebuilt as an `ApplicationError`.",
            "__reduce__": _reduce_rebuilt,
        }
        cls = _REBUILT[name] = type(name, (ApplicationError,), namespace)
    return cls


def _reduce_rebuilt(self: ApplicationError) -> tuple[Any, ...]:
    return _restore_rebuilt, (type(self).__name__, self.args, self.__dict__)


def _restore_rebuilt(name: str, args: tuple[Any, ...], state: dict[str, Any]) -> WfrunError:
    return _restore(failure_class(name), args, state)


def _users_line() -> str | None:
    """``app.py:12`` for the innermost caller that is the user's code, if any."""
    import sys
    import sysconfig

    paths = sysconfig.get_paths()
    others = (
        _PACKAGE,
        *(paths[key] + os.sep for key in ("stdlib", "purelib", "platlib")),
        sys.prefix + os.sep,  # the environment's own scripts (bin/wfrun)
    )
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(others) and not filename.startswith("<"):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _users_frames(tb: TracebackType) -> TracebackType:
    """``tb`` without wfrun's own outer frames (the attempt runner that called the activity)."""
    while tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        tb = tb.tb_next
    return tb
