"""Guard rails: a warning when workflow code calls something that breaks replay.

While workflow code runs, a profile hook (per thread, only during the step) watches for calls
of ``time.time``, ``datetime.now``/``utcnow``/``today``, the ``random`` module's functions,
``uuid.uuid1``/``uuid4``, and ``asyncio.as_completed`` over coroutines of the user's own
``async def`` functions (it starts them in an order that depends on memory addresses), made
*directly* from the user's code (not from wfrun, the standard library or installed packages).
``asyncio.sleep`` is not among them: inside a workflow it is a durable timer, as
``workflows.workflow.sleep`` is. Each offending line is reported once per
process as a `DeterminismWarning` naming the file, the line and the deterministic replacement.

It warns rather than refuses: no sandbox, nothing rewritten. A workflow opts out with
``@workflows.workflow.define(..., determinism_warnings=False)``; warnings can also be silenced
or made errors with the standard filters (``-W error::wfrun.DeterminismWarning``).

The guard watches live steps and ``wfrun replay``, not the replay phase of a resume: what a
resume replays ran live before (and was watched then), and a resume must stay cheap.

On Python 3.12+ it uses ``sys.monitoring`` instead of a profile hook (which 3.12 made several
times dearer), under its own tool id, started at the first guarded step and kept for the
process: code that is not the user's (wfrun, the standard library, installed packages) is
dropped at its first start, for good, as no call made from there is ever reported; user code
seen running in a guarded step gets CALL events, each call checked in a step (a call site is
never disabled: its callee can change from one call to the next); the watched Python functions
(``uuid4``, the ``random`` methods, ``as_completed``) are caught as they start. User code that
never runs in a step (activities, the application around wfrun) pays one callback per function
start, none per call. Monitoring is process-wide, so it is scoped by a per-thread record of
the guard watching a step.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as _dt
import functools
import os
import random
import sys
import sysconfig
import threading
import time
import types
import uuid
import warnings
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, Final, TypeVar

from .. import runtime as _runtime
from ..errors import DeterminismWarning

_C_CALLS: Final[dict[Any, tuple[str, str]]] = {
    time.time: ("time.time()", "workflows.workflow.now()"),
    time.time_ns: ("time.time_ns()", "workflows.workflow.now()"),
    _dt.datetime.now: ("datetime.now()", "workflows.workflow.now()"),
    _dt.datetime.utcnow: ("datetime.utcnow()", "workflows.workflow.now()"),
    _dt.datetime.today: ("datetime.today()", "workflows.workflow.now()"),
    _dt.date.today: ("date.today()", "workflows.workflow.now().date()"),
    random.random: ("random.random()", "workflows.workflow.random().random()"),
    random.getrandbits: ("random.getrandbits()", "workflows.workflow.random().getrandbits()"),
}

_PY_CALLS: Final[dict[CodeType, tuple[str, str]]] = {
    uuid.uuid4.__code__: ("uuid.uuid4()", "workflows.workflow.uuid4()"),
    uuid.uuid1.__code__: ("uuid.uuid1()", "workflows.workflow.uuid4()"),
}

# The random module's functions are methods of one hidden Random instance; the same methods on
# workflow.random()'s own instance are fine, so these are matched on that instance only.
_RANDOM_METHODS: Final[dict[CodeType, str]] = {
    getattr(random.Random, name).__code__: name
    for name in ("randint", "randrange", "choice", "choices", "shuffle", "sample", "uniform")
}

_NOT_USER_CODE: Final = tuple(
    {
        os.path.dirname(os.path.dirname(__file__)) + os.sep,  # wfrun itself
        sysconfig.get_paths()["stdlib"] + os.sep,
        sysconfig.get_paths()["purelib"] + os.sep,
        sysconfig.get_paths()["platlib"] + os.sep,
    }
)

_reported: set[tuple[str, int, str]] = set()
#: Every offending call seen, by workflow name: (call, "file:line", replacement). A mismatch on
#: replay is then told apart: such a call means the code is not deterministic, none that the
#: code changed.
_seen: dict[str, dict[tuple[str, str, str], None]] = {}


def seen(workflow: str) -> list[tuple[str, str, str]]:
    """The calls of ``workflow``'s code whose results change on replay, seen by this process."""
    return list(_seen.get(workflow, ()))


def forget() -> None:
    """Forget what was seen and reported (as a fresh process would start)."""
    _reported.clear()
    _seen.clear()


F = TypeVar("F", bound=Callable[..., Any])


def unwatched(method: F) -> F:
    """Suspend the guard while wfrun's own code runs inside a workflow step.

    The hook is only for the user's calls; letting it see every call wfrun makes on their
    behalf (binding, encoding, validation) would multiply the cost of a step.
    """

    if _MONITORING is not None:
        return method  # sys.monitoring ignores wfrun's code after its first call: nothing to do

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hook = sys.getprofile()
        # Attribute reads only: a call (getattr, isinstance) would be one more pair of events
        # for the hook to see on every call into wfrun.
        if (
            hook is None
            or hook.__class__ is not types.FunctionType
            or hook.__code__ is not _HOOK_CODE
        ):
            return method(*args, **kwargs)
        sys.setprofile(None)
        try:
            return method(*args, **kwargs)
        finally:
            sys.setprofile(hook)

    return wrapper  # type: ignore[return-value]


class Guard:
    """Context manager watching one step of workflow code (a no-op when disabled)."""

    __slots__ = ("_active", "_enabled", "_found", "_hook", "_outer", "paused", "workflow")

    def __init__(self, workflow: str, enabled: bool) -> None:
        self.workflow = workflow
        self._enabled = enabled
        #: Set while a resume replays: every replayed line ran live before, watched then.
        self.paused = False
        self._found: list[tuple[str, int, str, str]] = []
        self._active = False
        self._hook = _make_hook(workflow, self._found)
        self._outer: Guard | None = None

    def __enter__(self) -> Guard:
        # A profiler the user runs (cProfile, pyinstrument) holds the hook: step aside for it.
        self._active = self._enabled and not self.paused and sys.getprofile() is None
        if not self._active:
            return self
        if _MONITORING is not None and _monitor():
            # cProfile on 3.12+ is itself a sys.monitoring tool: step aside for it too.
            if _MONITORING.get_tool(_MONITORING.PROFILER_ID) is not None:
                self._active = False
                return self
            thread = threading.get_ident()
            self._outer = _watching.get(thread)
            _watching[thread] = self
        else:
            sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._active:
            return
        if _tool is None:
            sys.setprofile(None)
            # A hook left for an activity's wrapper that never ran (an exception between the
            # two): it must not come back after the step.
            if _runtime.guard_suspended:
                _runtime.guard_suspended.pop(threading.get_ident(), None)
        else:
            thread = threading.get_ident()
            if self._outer is None:
                del _watching[thread]
            else:
                _watching[thread], self._outer = self._outer, None
        if not self._found:
            return
        found = list(self._found)
        self._found.clear()  # the list the hook appends to: kept, emptied
        for filename, lineno, call, replacement in found:
            # Emitted here, outside the hook: a filter that turns warnings into errors then
            # raises in the engine's hands rather than tearing the profiler down mid-step.
            warnings.warn_explicit(
                f"workflow {self.workflow!r} calls {call} at {filename}:{lineno}: its result "
                f"changes when the run is replayed after a crash. Use {replacement} instead "
                "(or opt out with @workflows.workflow.define(..., determinism_warnings=False))",
                DeterminismWarning,
                filename,
                lineno,
            )


def _make_hook(
    workflow: str, found: list[tuple[str, int, str, str]]
) -> Callable[[FrameType, str, Any], None]:
    """The profile hook of one workflow's guard.

    It runs for every call and return while a step runs, so it rejects in as few operations
    as it can: a C function by its name (one set lookup; hashing every callable, which fails
    for methods of unhashable objects such as a deque's, cost more than the step's own
    work), a Python function by its code object. Only what passes is looked at closely.
    """
    c_names = _C_NAMES
    py_names = _PY_NAMES
    watched_code = _WATCHED_CODE
    activity_call = _runtime.activity_call_code
    suspended = _runtime.guard_suspended
    get_ident = threading.get_ident

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            if getattr(arg, "__name__", None) not in c_names:
                return
            entry = _C_CALLS.get(arg) if _hashable(arg) else None
            caller: FrameType | None = frame
        elif event == "call":
            code = frame.f_code
            if code is activity_call:
                # An activity call: wfrun's own work from its first line. The hook steps out
                # here, and the wrapper puts it back as it returns (`runtime.guard_suspended`).
                sys.setprofile(None)
                suspended[get_ident()] = hook
                return
            # By name first: a code object's hash is computed afresh from its bytecode and
            # constants on every lookup (about a microsecond), a name's is cached.
            if code.co_name not in py_names or code not in watched_code:
                return
            entry = _python_call(frame, code)
            caller = frame.f_back
        else:
            return
        if entry is None or caller is None:
            return
        _report(workflow, found, caller, entry)

    return hook


def _python_call(frame: FrameType, code: CodeType) -> tuple[str, str] | None:
    entry = _PY_CALLS.get(code)
    if entry is None and code in _RANDOM_METHODS and frame.f_locals.get("self") is random._inst:
        name = _RANDOM_METHODS[code]
        entry = (f"random.{name}()", f"workflows.workflow.random().{name}()")
    if entry is None and code is _AS_COMPLETED and _has_coroutines(frame):
        entry = _UNORDERED
    return entry


def _report(
    workflow: str,
    found: list[tuple[str, int, str, str]],
    caller: FrameType,
    entry: tuple[str, str],
) -> None:
    filename = caller.f_code.co_filename
    if filename.startswith(_NOT_USER_CODE) or filename.startswith("<"):
        return
    _seen.setdefault(workflow, {})[(entry[0], f"{filename}:{caller.f_lineno}", entry[1])] = None
    key = (filename, caller.f_lineno, entry[0])
    if key not in _reported:
        _reported.add(key)
        found.append((filename, caller.f_lineno, *entry))


_AS_COMPLETED: Final = asyncio.as_completed.__code__
_UNORDERED: Final = ("asyncio.as_completed() on coroutines", "workflows.workflow.as_completed()")


def _has_coroutines(frame: FrameType) -> bool:
    awaitables = frame.f_locals.get("fs")
    if not isinstance(awaitables, list | tuple | set):
        return False  # a generator: looking would consume it
    return any(isinstance(aw, types.CoroutineType) for aw in awaitables)


#: What the hook looks at closely: the names of the C functions it watches (every other C
#: call is rejected by name alone), and the code of the Python functions it watches.
_C_NAMES: Final = frozenset(getattr(function, "__name__", "") for function in _C_CALLS)
_WATCHED_CODE: Final = frozenset([*_PY_CALLS, *_RANDOM_METHODS, _AS_COMPLETED])
_PY_NAMES: Final = frozenset(code.co_name for code in _WATCHED_CODE)
#: How `unwatched` recognizes a guard's hook (each guard has its own closure of this code).
_HOOK_CODE: Final = _make_hook("", []).__code__


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# -- Python 3.12+: sys.monitoring ------------------------------------------------------------

_MONITORING: Final[Any] = getattr(sys, "monitoring", None)
_TOOL_NAME: Final = "wfrun determinism guard"
#: The tool id the guard holds, once it has started monitoring (None: it has not, or uses the
#: profile hook because every free id was taken).
_tool: int | None = None
_tried = False
#: The guard watching a step, by thread: monitoring is process-wide, the guard is not.
_watching: dict[int, Guard] = {}
#: Whether a file holds the user's code, by file name (a few dozen names, looked up per call).
_user_files: dict[str, bool] = {}


def _monitor() -> bool:
    """Start monitoring on first use (in this process, for good); False if no tool id is free."""
    global _tool, _tried
    if _tool is not None or _tried:
        return _tool is not None
    _tried = True
    events = _MONITORING.events
    # Ids 0-2 and 5 are the ones debuggers, coverage, profilers and optimizers claim by name.
    for tool in (4, 3, 5):
        if _MONITORING.get_tool(tool) is None:
            _MONITORING.use_tool_id(tool, _TOOL_NAME)
            _MONITORING.register_callback(tool, events.CALL, _on_call)
            _MONITORING.register_callback(tool, events.PY_START, _on_start)
            _MONITORING.register_callback(tool, events.PY_RESUME, _on_start)
            _MONITORING.set_events(tool, events.PY_START | events.PY_RESUME)
            _tool = tool
            atexit.register(_stop_monitoring, tool)
            return True
    return False


def _on_start(
    code: CodeType,
    offset: int,
    # Bound here: a local is cheaper than a global, and outlives the module's teardown.
    files: dict[str, bool] = _user_files,
    watching: dict[int, Guard] = _watching,
    thread: Callable[[], int] = threading.get_ident,
) -> object:
    """PY_START/PY_RESUME: which code runs, and whether its calls are to be watched.

    Code that is not the user's never is: its start is disabled at once, for good. User code
    seen running in a guarded step has CALL events set on it (and its start disabled): it is
    watched from then on, at a callback per call, wherever it runs. User code running outside
    any step (an activity, the application around wfrun) is left alone: a callback per start,
    none per call, until it runs in a step.
    """
    user = files.get(code.co_filename)
    if user is None:
        user = files[code.co_filename] = _is_user_file(code.co_filename)
    if user:
        if not watching or thread() not in watching:
            return None
        _MONITORING.set_local_events(_tool, code, _MONITORING.events.CALL)
        return _DISABLE
    if code.co_name in _PY_NAMES and code in _WATCHED_CODE:  # uuid4, random's, as_completed
        guard = watching.get(thread())
        if guard is not None:
            frame = sys._getframe(1)  # the watched function's own frame
            entry = _python_call(frame, code)
            if entry is not None and frame.f_back is not None:
                _report(guard.workflow, guard._found, frame.f_back, entry)
        return None  # never disabled: called from the user's code next time, perhaps
    return _DISABLE


def _on_call(
    code: CodeType,
    offset: int,
    callee: object,
    arg0: object,
    watching: dict[int, Guard] = _watching,
    thread: Callable[[], int] = threading.get_ident,
) -> object:
    """CALL in user code that ran in a step: a C function the guard watches, called in a step.

    A call site is never disabled: its callee can change from one call to the next.
    """
    if not watching:
        return None
    guard = watching.get(thread())
    # Only C functions are looked at here (by type, so no user object's __getattr__ runs);
    # the watched Python functions are caught as they start, in _on_start.
    if guard is None or callee.__class__ is not types.BuiltinFunctionType:
        return None
    if callee.__name__ not in _C_NAMES or not _hashable(callee):
        return None
    entry = _C_CALLS.get(callee)
    if entry is not None:
        _report(guard.workflow, guard._found, sys._getframe(1), entry)
    return None


def _stop_monitoring(tool: int) -> None:
    """At exit: no callback may run while the interpreter tears its modules down."""
    global _tool
    _tool = None  # a guard entered after this (another atexit function) uses the profile hook
    _MONITORING.set_events(tool, 0)
    events = _MONITORING.events
    for event in (events.CALL, events.PY_START, events.PY_RESUME):
        _MONITORING.register_callback(tool, event, None)
    _MONITORING.free_tool_id(tool)


def _is_user_file(filename: str) -> bool:
    return not (filename.startswith(_NOT_USER_CODE) or filename.startswith("<"))


_DISABLE: Final[object] = _MONITORING.DISABLE if _MONITORING is not None else None

if _MONITORING is None:
    # An activity call steps out of this hook at its first frame (see the runtime's note).
    _runtime.guard_hook_code = _HOOK_CODE
