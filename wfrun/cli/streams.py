"""Where ``print()`` in a user's workflow and activity code goes while the command line runs it.

stdout belongs to wfrun's answer (a result, ``--json``), so that ``wfrun start ... --json | jq``
always works: while user code runs, ``sys.stdout`` is redirected to stderr. The redirect is
process-wide, so a plain ``def`` activity in a worker thread is covered too. And a workflow
replayed by ``resume`` or ``query`` does not say again what it said when it ran: a write made
by workflow code while it replays is dropped (as ``workflow.logger`` drops its records).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, TextIO, cast

from ..runtime import current_workflow


class UserOutput:
    """A text stream that writes to ``target``, except what replaying workflow code writes."""

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, data: str) -> int:
        runtime = current_workflow()
        if runtime is not None and runtime.is_replaying:
            return len(data)
        return self._target.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, ...
        return getattr(self._target, name)


@contextlib.contextmanager
def user_output_to_stderr() -> Iterator[None]:
    """While user code runs: its stdout goes to stderr, and nothing it writes while replaying."""
    stderr = sys.stderr
    stream = cast("TextIO", UserOutput(stderr))
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        yield
