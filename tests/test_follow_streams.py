"""``wfrun history RUN --follow`` prints rows as it reads them, as plain ``history`` does, then
follows the run: the first rows come before the file's last byte is read, and memory does not
grow with the history (nothing is held but a chunk)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import pytest
from test_streaming_reads import write_history

from wfrun.local import backend as backend_module
from wfrun.local.store import RunStore

from conftest import cli

STEPS = 4_000  # ~1.5 MB: more than one read of the stream (`stream.CHUNK`, 1 MiB)


class ReadsWatched:
    """Every read of the run file, with how much stdout held when it was made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
        self._inode = os.stat(path).st_ino
        self.size = os.stat(path).st_size
        self.read = 0
        #: Bytes on stdout when the read that reached the file's end was made.
        self.printed_at_the_end: int | None = None
        for name in ("read", "pread"):
            monkeypatch.setattr(os, name, self._watching(getattr(os, name)))

    def _watching(self, read: object) -> object:
        def watched(fd: int, *args: int) -> bytes:
            data: bytes = read(fd, *args)  # type: ignore[operator]
            if data and os.fstat(fd).st_ino == self._inode:
                self.read += len(data)
                if self.read >= self.size and self.printed_at_the_end is None:
                    sys.stdout.flush()
                    self.printed_at_the_end = len(sys.stdout.buffer.getvalue())  # type: ignore[attr-defined]
            return data

        return watched


@pytest.mark.parametrize("json_output", [False, True], ids=["rows", "json"])
def test_history_follow_prints_the_first_rows_before_the_whole_file_is_read(
    home: Path, monkeypatch: pytest.MonkeyPatch, json_output: bool
) -> None:
    path = write_history(home, "long", steps=STEPS)
    reads = ReadsWatched(monkeypatch, path)
    result = cli("history", "long", "--follow", *(["--json"] if json_output else []))
    assert result.exit_code == 0, result.output
    assert reads.printed_at_the_end is not None, "the file was never read to its end"
    assert reads.printed_at_the_end > 0  # rows were out before the last byte was read
    assert len(result.stdout.splitlines()) == 2 + 3 * STEPS + (0 if json_output else 1)


def test_history_follow_goes_on_where_the_streamed_rows_end(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live run (locked here) whose writer is midway through its last line: the rows of
    the whole lines stream out, then following picks that line up once it is whole, each
    event once, in order."""
    path = write_history(home, "long", steps=STEPS)
    *whole, last = path.read_bytes().splitlines(keepends=True)
    torn, rest = last[:20], last[20:]
    path.write_bytes(b"".join(whole) + torn)
    reads = ReadsWatched(monkeypatch, path)
    store = RunStore(home)
    lock = store._lock("long")  # a live process holds the run

    def writer_goes_on(_: float) -> None:  # what the live process writes while we wait
        if store.is_locked("long"):
            with path.open("ab") as file:
                file.write(rest)
            lock.release("long")

    monkeypatch.setattr(backend_module.time, "sleep", writer_goes_on)
    try:
        result = cli("history", "long", "--follow", "--json")
    finally:
        lock.release("long")
    assert result.exit_code == 0, result.output
    assert reads.printed_at_the_end  # streamed first
    ids = [orjson.loads(line)["id"] for line in result.stdout.splitlines()]
    assert ids == list(range(1, 3 * STEPS + 3))
    assert result.stdout.encode().splitlines() == path.read_bytes().splitlines()
