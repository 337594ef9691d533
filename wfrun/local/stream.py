"""Reading a run's history one event at a time, for the commands that only show it.

`wfrun.local.history.parse_history` turns a whole file into a list of events, which replay
and resume need. ``wfrun history`` only passes each event on, so `HistoryStream` reads the
file in chunks and checks every line as `parse_history` does (the same functions, the same
messages): memory stays flat in the history's length, and the first rows can be shown before
the last line is read. Damage is raised where it is reached, after the events before it were
handed out; the caller says so (exit 6) even though it showed those.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

from ..errors import HistoryCorruptError
from ..events import CHECKSUMMED, Event
from .history import (
    _could_be_torn,
    check_next,
    check_started,
    content_end,
    parse_line,
    parse_started,
    torn_note,
)

#: How much of the file is read at a time: large enough for few system calls, small enough
#: that memory does not grow with the history.
CHUNK: Final = 1 << 20


class HistoryStream:
    """A run's checked events, each with its line as stored, read as they are iterated.

    Opening reads and checks the first line (`started`); iterating yields every event from
    the first, each with its stored line (without the newline), and raises
    `HistoryCorruptError` at the first damaged line. Once iteration ends, `note` says what a
    torn tail held (as `History.note` does) and `last` is the last event. The file descriptor
    is closed when iteration ends, or by `close` (a ``with`` block).
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        run_id: str | None = None,
        *,
        io_error: Callable[[OSError, Path, str], Exception],
    ) -> None:
        self.path = path
        self._fd = fd
        self._io_error = io_error
        self._offset = 0
        self._pending = b""
        self.note: str | None = None
        #: Bytes of whole events read so far (all of them, once iteration ended).
        self.intact_size = 0
        try:
            first = self._first_line()
            self.started = parse_started(path, first)
            check_started(path, self.started, run_id)
        except BaseException:
            self.close()
            raise
        self._first = first
        self.last: Event = self.started

    def _read(self) -> bytes:
        try:
            chunk = os.pread(self._fd, CHUNK, self._offset)  # to the real end: it may grow
        except OSError as exc:
            raise self._io_error(exc, self.path, "cannot read") from None
        self._offset += len(chunk)
        return chunk

    def _first_line(self) -> bytes:
        while (end := self._pending.find(b"\n")) < 0:
            chunk = self._read()
            if not chunk:
                torn = self._pending[: content_end(self._pending)]
                raise HistoryCorruptError(
                    f"{self.path}: the file holds no complete event"
                    + (f" (only {len(torn)} bytes of a torn first line)" if torn else ""),
                    path=str(self.path),
                    line=1,
                )
            self._pending += chunk
        first, self._pending = self._pending[:end], self._pending[end + 1 :]
        self.intact_size = end + 1
        return first

    def __iter__(self) -> Iterator[tuple[Event, bytes]]:
        try:
            yield from self._events()
        finally:
            self.close()

    def _events(self) -> Iterator[tuple[Event, bytes]]:
        path = self.path
        checksummed = self.started.format >= CHECKSUMMED
        last: Event = self.started
        yield last, self._first
        number = 1
        data = self._pending
        while True:
            whole = data.rfind(b"\n") + 1
            self._pending = data[whole:]
            for line in data[:whole].split(b"\n")[:-1]:
                number += 1
                event = parse_line(path, number, line, checksummed=checksummed)
                check_next(path, number, event, last)
                self.last = last = event
                self.intact_size += len(line) + 1
                yield event, line
            chunk = self._read()
            if not chunk:
                break
            data = self._pending + chunk
        torn = self._pending[: content_end(self._pending)]  # a zero tail is the end
        if torn and not _could_be_torn(torn, self.started.max_payload):
            raise HistoryCorruptError(
                f"{path}:{number + 1}: the file ends with {len(torn):,} bytes that are no "
                "event (a crash can only leave the start of one line). Nothing was changed",
                path=str(path),
                line=number + 1,
            )
        if torn:
            self.note = torn_note(path, len(torn))

    def close(self) -> None:
        """Release the file (iterating further raises nothing, and yields nothing new)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> HistoryStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
