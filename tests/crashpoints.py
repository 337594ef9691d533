"""Run the wfrun command line in a process that stops at a named point, to be killed there.

    WFRUN_TEST_STOP_AT=<point> python tests/crashpoints.py <wfrun arguments>

A crash test kills a process only once the process itself has said how far it got. Inside an
activity or a handler the body writes that marker (`flows.steps.reached`); between a message's
post and its record no user code runs, so this launcher wraps the wfrun function that ends at
the point and, as soon as it returns, appends a line to ``$WFRUN_TEST_LOG/<point>.log`` (read
with `conftest.kill_after_marker`, as an activity's line is) and then blocks the whole
process, event loop included: nothing runs past the point until the test kills it.

Points, in the order a message meets them:

- ``inbox-posted`` (a sender): `Inbox.post` returned; the message is written and fsync'd, and
  the sender has not begun to hand it over.
- ``inbox-read`` (the run's process): `Inbox.read` returned a message; nothing is recorded.
- ``message-written``: the history write holding a ``SignalReceived``, ``UpdateAccepted`` or
  ``CancelRequested`` returned, before its fsync. (A kill -9 keeps what was written, so a
  resume finds the event, as after ``message-synced``; only a power cut could tell them apart.)
- ``message-synced``: the fsync after that write returned (or, begun aside, landed: see
  `HistoryWriter.sync_soon`); nothing the workflow did with it has left the run.
- ``answer-awaited`` (an update's sender): its update is accepted but not yet answered.

Points in how a history grows (`wfrun.local.store`), with reservations made 1 KiB at a time so
that a short run makes several:

- ``space-reserved``: the third reservation of the run's file returned (the first is the
  new file's, the second and third were made by the live run), before the events that needed
  it are written.
- ``trimming``: the run's writer is closing, every event written and synced, before the trim of
  its reserved zeros.

A point in how a run is created:

- ``before-link``: a new run's file holds its first event, synced, under its temporary name
  (``.<run-id>.<pid>.<hex>.tmp``), and is about to be linked into place. In a crowd of runs
  created at once the links of a turn are made in a few sync threads: the one that gets
  there first stops, with the rest of its share; the others go on.

``python tests/crashpoints.py --script FILE ARGS`` runs the Python script ``FILE`` instead of
the command line (a crowd of runs in one process, say).

This is test code, not a hook in wfrun: it patches wfrun internals (as the fault tests patch
`RunStore.write`), and fails at once if one of them has gone, rather than never stopping.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from wfrun.local import backend, store
from wfrun.local.inbox import Inbox, Message
from wfrun.local.store import HistoryWriter, RunStore

#: A history write that records a message's arrival.
_ARRIVAL: Final = re.compile(rb'"type":"(SignalReceived|UpdateAccepted|CancelRequested)"')
#: A stopped process that nobody killed (a failed test) leaves, rather than run on.
_LONGEST_STOP: Final = 120.0


def stop(point: str) -> None:
    """Say the process is at ``point`` (the test's marker), then wait to be killed."""
    with open(Path(os.environ["WFRUN_TEST_LOG"]) / f"{point}.log", "a") as log:
        log.write("x\n")
    deadline = time.monotonic() + _LONGEST_STOP
    while time.monotonic() < deadline:
        time.sleep(0.05)  # a blocking sleep: the event loop must not move on either
    os._exit(70)


def _after_post() -> None:
    post = Inbox.post

    def stopping(self: Inbox, *args: Any, **kwargs: Any) -> Message:
        message = post(self, *args, **kwargs)
        stop("inbox-posted")
        return message

    Inbox.post = stopping  # type: ignore[method-assign]


def _after_read() -> None:
    read = Inbox.read

    def stopping(self: Inbox, offset: int = 0) -> tuple[list[Message], int]:
        messages, end = read(self, offset)
        if messages:
            stop("inbox-read")
        return messages, end

    Inbox.read = stopping  # type: ignore[method-assign]


def _after_arrival(point: str) -> None:
    written = [False]

    def write(fd: int, data: memoryview) -> int:
        done = os.write(fd, data)
        if _ARRIVAL.search(bytes(data[:done])):
            written[0] = True
            if point == "message-written":
                stop(point)
        return done

    def stopping_after(synced: Callable[..., None]) -> Callable[..., None]:
        def stopping(self: HistoryWriter, *args: Any) -> None:
            synced(self, *args)
            if written[0] and point == "message-synced":
                stop(point)

        return stopping

    RunStore.write = staticmethod(write)
    HistoryWriter._sync_here = stopping_after(HistoryWriter._sync_here)  # type: ignore[method-assign]
    HistoryWriter.settle = stopping_after(HistoryWriter.settle)  # type: ignore[method-assign]


def _while_awaiting_the_answer() -> None:
    answer = backend._answer

    def stopping(history: Any, message: str) -> Any:
        found = answer(history, message)
        if found is None:
            stop("answer-awaited")
        return found

    backend._answer = stopping


def _after_a_reservation() -> None:
    store._FIRST_RESERVATION = 1024  # a Final: patched here only
    store._MOST_RESERVATION = 1024
    reserve = HistoryWriter._reserve
    made = [0]

    def stopping(self: HistoryWriter, end: int) -> None:
        reserve(self, end)
        made[0] += 1
        if made[0] == 3:
            stop("space-reserved")

    HistoryWriter._reserve = stopping  # type: ignore[method-assign]


def _before_the_trim() -> None:
    release = HistoryWriter._release

    def stopping(self: HistoryWriter) -> None:
        if self._fd >= 0 and self._allocated > self._size:
            stop("trimming")
        release(self)

    HistoryWriter._release = stopping  # type: ignore[method-assign]


def _before_the_link() -> None:
    link = store._link_one

    def stopping(temporary: Path, final: Path) -> None:
        stop("before-link")
        link(temporary, final)

    store._link_one = stopping


POINTS: Final[dict[str, Callable[[], None]]] = {
    "inbox-posted": _after_post,
    "inbox-read": _after_read,
    "message-written": lambda: _after_arrival("message-written"),
    "message-synced": lambda: _after_arrival("message-synced"),
    "answer-awaited": _while_awaiting_the_answer,
    "space-reserved": _after_a_reservation,
    "trimming": _before_the_trim,
    "before-link": _before_the_link,
}


def main() -> None:
    POINTS[os.environ["WFRUN_TEST_STOP_AT"]]()
    if sys.argv[1:2] == ["--script"]:
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    from wfrun.cli import main as command_line

    command_line()


if __name__ == "__main__":
    main()
