"""The ``wfrun`` command's first code, kept outside the ``wfrun`` package on purpose.

Importing ``wfrun`` takes a few hundred milliseconds (pydantic, rich, typer). Ctrl-C or SIGTERM
in that window would end the process with a traceback or a bare signal; the handlers installed
here first make it exit 130 with one line, like an interruption at any later moment (as soon
as those imports are done: an exception raised inside one can crash a C extension). (Any
module inside the package would only run after the package itself was imported.) Once the
command has finished, what is left is the interpreter's own shutdown (waiting for a thread an
activity left running, say): a signal then ends the process at once, with no traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

INTERRUPTED = 130
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Findable by its name when run as ``python -m _wfrun_launcher`` too (then it is __main__).
sys.modules.setdefault("_wfrun_launcher", sys.modules[__name__])


_finished = False
#: A signal arrived. Python ignores an exception raised where it runs a callback (a weakref's,
#: in an import's module lock): this says so all the same, to the command and to `main`.
pending = False
#: wfrun's own modules are being imported: a signal is noted, and acted on once they are.
_importing = False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global pending
    if _importing:
        # An exception raised in the middle of an import can land in a C extension's module
        # set-up while it imports what it needs, and some do not survive that: orjson's ends
        # the process with SIGSEGV. The imports take a fraction of a second; a second signal
        # meanwhile (an import that hangs) leaves at once.
        if pending:
            _leave_interrupted()
        pending = True
        return
    if not _finished:
        pending = True
        raise KeyboardInterrupt
    # The command has finished and said so; the interpreter is only waiting (for a thread an
    # activity left running, say). Leave now: the thread dies with the process, and so does
    # the run's lock, so nothing can run twice.
    os._exit(INTERRUPTED)


def main() -> None:
    """Run the ``wfrun`` command line, interruptible from its very first import."""
    global _importing
    for signum in _SIGNALS:
        signal.signal(signum, _interrupt)
    try:
        _importing = True
        try:
            # A parent may have blocked them (a service manager, a test): handled from here on.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            from wfrun.cli import main as command_line
        finally:
            _importing = False
        if pending:  # it came during the imports, or fell where Python ignored it
            raise KeyboardInterrupt
        command_line()  # exits through SystemExit, with the command's exit code
    except KeyboardInterrupt:
        _leave_interrupted()
    except Exception as exc:
        # Python wraps an interrupt that lands in some corners of an import (a class's
        # __set_name__) in a RuntimeError: still an interrupt, not a bug to show.
        if not _caused_by_interrupt(exc):
            raise
        _leave_interrupted()
    except SystemExit as exc:
        _finish()
        if exc.code == INTERRUPTED and threading.active_count() == 1:
            # Interrupted, maybe half-way through an import: the interpreter's own shutdown
            # can then stumble over what was left half-built. Nothing is left to do: leave.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(INTERRUPTED)
        raise  # threads of activities may still run: the normal shutdown waits for them


def _leave_interrupted() -> None:
    _finish()
    sys.stderr.write("wfrun: interrupted; nothing was left half-done\n")
    sys.stderr.flush()
    os._exit(INTERRUPTED)  # no shutdown to interrupt again


def _caused_by_interrupt(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _finish() -> None:
    global _finished
    _finished = True
    for signum in _SIGNALS:  # asyncio put back the defaults when the run's loop closed
        signal.signal(signum, _interrupt)


if __name__ == "__main__":
    main()
