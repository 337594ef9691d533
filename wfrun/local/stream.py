"""Reading a run's history one event at a time, for the commands that only show it.

`wfrun.local.history.parse_history` turns a whole file into a list of events, which replay
and resume need. ``wfrun history`` only passes each event on, so `HistoryStream` reads the
file in chunks and checks every line as `parse_history` does (the same `LineReader`, the same
messages; ``history --json``, which copies the lines, has them checked without building the
events: `HistoryStream.lines`): memory stays flat in the history's length, and the first rows
can be shown before the last line is read. Damage is raised where it is reached, after the
events before it were handed out; the caller says so (exit 6) even though it showed those.
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
    LineReader,
    _could_be_torn,
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
    torn tail held (as `History.note` does), `last` is the last event and `intact_size` the
    bytes of whole events (where ``history --follow`` goes on). `lines` yields the lines
    alone, as checked (and sets those too). The file descriptor is closed when iteration ends, or by
    `close` (a ``with`` block).
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
        #: The number of the last line handed out.
        self._number = 1

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

    def lines(self) -> Iterator[bytes]:
        """Every line as stored (without its newline), checked as iterating checks it, but
        without building the events: for ``history --json``, which only copies them."""
        try:
            yield self._first
            reader = LineReader(self.path, self.started)
            last = self._first
            for lines in self._chunks():
                try:
                    reader.check(lines)
                except HistoryCorruptError:  # the lines before the damage were whole
                    yield from self._handed(lines[: reader.number - self._number])
                    raise
                yield from self._handed(lines)
                last = lines[-1]
            if self._number > 1:  # checked, not built: the one event `last` names is built
                checksummed = self.started.format >= CHECKSUMMED
                self.last = parse_line(self.path, self._number, last, checksummed=checksummed)
        finally:
            self.close()

    def _events(self) -> Iterator[tuple[Event, bytes]]:
        yield self.started, self._first
        reader = LineReader(self.path, self.started)
        for lines in self._chunks():
            events: list[Event] = []
            try:
                reader.read(lines, events)
            except HistoryCorruptError:  # the events before the damage are handed out first
                yield from zip(events, self._handed(lines[: len(events)]), strict=True)
                raise
            yield from zip(events, self._handed(lines), strict=True)
            self.last = events[-1]

    def _handed(self, lines: list[bytes]) -> Iterator[bytes]:
        for line in lines:
            self.intact_size += len(line) + 1
            self._number += 1
            yield line

    def _chunks(self) -> Iterator[list[bytes]]:
        """The whole lines after the first, a chunk's worth at a time; then the torn tail
        is checked (a zero tail is the end), and `note` set."""
        data = self._pending
        while True:
            whole = data.rfind(b"\n") + 1
            self._pending = data[whole:]
            if whole:
                yield data[: whole - 1].split(b"\n")
            chunk = self._read()
            if not chunk:
                break
            data = self._pending + chunk
        torn = self._pending[: content_end(self._pending)]  # a zero tail is the end
        number = self._number
        if torn and not _could_be_torn(torn, self.started.max_payload):
            raise HistoryCorruptError(
                f"{self.path}:{number + 1}: the file ends with {len(torn):,} bytes that are no "
                "event (a crash can only leave the start of one line). Nothing was changed",
                path=str(self.path),
                line=number + 1,
            )
        if torn:
            self.note = torn_note(self.path, len(torn))

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
