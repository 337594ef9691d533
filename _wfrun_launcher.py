"""The ``wfrun`` command's first code, kept outside the ``wfrun`` package on purpose.

Importing ``wfrun`` takes a few hundred milliseconds (pydantic, rich, typer). Ctrl-C or SIGTERM
in that window would end the process with a traceback or a bare signal; the handlers installed
here first make it exit 130 with one line, like an interruption at any later moment. (Any
module inside the package would only run after the package itself was imported.) Once the
command has finished, what is left is the interpreter's own shutdown: signals are ignored then,
so that it ends with the command's exit code and no traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

INTERRUPTED = 130
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


_finished = False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # A signal caught by the OS just before the command finished may reach Python just after:
    # the command's outcome stands then, and only the interpreter's shutdown is left.
    if not _finished:
        raise KeyboardInterrupt


def main() -> None:
    """Run the ``wfrun`` command line, interruptible from its very first import."""
    for signum in _SIGNALS:
        signal.signal(signum, _interrupt)
    try:
        # A parent may have blocked them (a service manager, a test): handled from here on.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        from wfrun.cli import main as command_line

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
        _quietly()
        if exc.code == INTERRUPTED and threading.active_count() == 1:
            # Interrupted, maybe half-way through an import: the interpreter's own shutdown
            # can then stumble over what was left half-built. Nothing is left to do: leave.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(INTERRUPTED)
        raise  # threads of activities may still run: the normal shutdown waits for them


def _leave_interrupted() -> None:
    _quietly()
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


def _quietly() -> None:
    global _finished
    _finished = True
    for signum in _SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


if __name__ == "__main__":
    main()
