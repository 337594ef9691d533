"""Messages to a run, with no daemon: ``<home>/inbox/<run-id>.jsonl``, one message per line.

``wfrun signal`` appends a message and fsyncs it (the first one also syncs the folders that
name its new file) before it says anything: from then on the message survives any crash. The
process that runs the run reads the inbox (on start, then every `POLL` seconds) and records
each message in the history, as ``SignalReceived``, at the point the workflow observes it. A
message counts as delivered once its id is in the history, so it is delivered exactly once
whatever is killed when: before the record it is still only in the inbox, after it the
history says so and a resume does not deliver it again.

Lines carry the history's checksum. The inbox is written under an exclusive ``flock`` of its
own (the run's lock belongs to whoever runs it); a torn last line, from a sender killed
mid-write, was never acknowledged and is cut off by the next sender. Inboxes follow the
history's trust rules: regular files of this user, in a folder nobody else can write to.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import secrets
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from ..events import EventFormatError, verify_checksum, with_checksum
from .store import RunStore, io_error, validate_run_id

#: How often a live run looks for new messages (seconds).
POLL: Final = 0.2


@dataclass(frozen=True, slots=True)
class Message:
    """One message to a run."""

    id: str
    ts: str
    kind: str
    name: str
    #: The handler's arguments by name, encoded (a JSON object).
    input: Any


class Inbox:
    """One run's inbox."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        #: The inbox's folder (the home's, shared by its runs: no path made per run for it)
        #: and its file's name in it.
        self.folder = store.inbox_dir
        self.name = f"{validate_run_id(run_id)}.jsonl"

    @functools.cached_property
    def path(self) -> Path:
        """The inbox's file (`RunStore.inbox_path`), made when first needed: most runs are
        sent no message, and only look whether their inbox is there (`read`)."""
        return self.folder / self.name

    def post(
        self, kind: str, name: str, input_data: bytes, ts: str, *, message_id: str | None = None
    ) -> Message:
        """Append a message and make it durable; return it (with its new id).

        A ``message_id`` chosen by the sender makes posting it again harmless: a run takes
        each id once.
        """
        message_id = message_id or secrets.token_hex(8)
        message = Message(message_id, ts, kind, name, orjson.loads(input_data))
        body = (
            orjson.dumps(
                {"id": message.id, "ts": ts, "kind": kind, "name": name},
            )[:-1]
            + b',"input":'
            + input_data
            + b"}"
        )
        line = with_checksum(body) + b"\n"
        with self._locked() as fd:
            size = os.fstat(fd).st_size
            if size:
                tail = os.pread(fd, 1, size - 1)
                if tail != b"\n":  # a sender died mid-write: that message was never sent
                    size = os.pread(fd, size, 0).rfind(b"\n") + 1
                    os.ftruncate(fd, size)
            try:
                os.write(fd, line)
                os.fsync(fd)
            except OSError as exc:
                raise io_error(exc, self.path, "cannot write the message to") from None
            if not size:
                # The first whole message: its file is new, and the fsync above does not make
                # its name durable (`ensure_folder` did the folder's). Under the lock, so that no
                # later sender is acknowledged before the file it appended to is there for good.
                self._store.sync_folder(self.folder)
        return message

    def read(self, offset: int = 0) -> tuple[list[Message], int]:
        """The whole messages from byte ``offset`` on, and the offset after the last of them."""
        try:
            data = self._store.read_in(self.folder, self.name, offset)
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        return list(_parse(data[:end])), offset + end

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self._store.ensure_folder(self.folder)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
        fd = self._store.open_checked(self.path, flags, self.folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)


def _parse(data: bytes) -> Iterator[Message]:
    for line in data.split(b"\n")[:-1]:
        try:
            verify_checksum(line, checksummed=True)
            obj = orjson.loads(line)
            yield Message(
                id=_text(obj, "id"),
                ts=_text(obj, "ts"),
                kind=_text(obj, "kind"),
                name=_text(obj, "name"),
                input=_object(obj, "input"),
            )
        except (EventFormatError, orjson.JSONDecodeError, TypeError):
            continue  # never acknowledged (a torn or forged line): not a message


def _text(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def _object(obj: Any, key: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise TypeError(key)
    return value


class InboxWatch:
    """Looks for new messages for every run live on one event loop: one listing of the inbox
    folder per `POLL`, not a timer and a file check per run (with thousands of live runs,
    those polls were most of the process's work).

    `watch` returns a function that stops watching; ``arrived`` is called, on the loop, when
    the run's inbox file is there with a size it did not have at the last call (it reads
    from where it stopped, so a call too many costs one read).
    """

    def __init__(self, folder: str) -> None:
        self._folder = folder
        self._watched: dict[str, tuple[Callable[[], None], list[int]]] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, inbox: Inbox, arrived: Callable[[], None]) -> Callable[[], None]:
        name = inbox.name
        entry = (arrived, [-1])
        self._watched[name] = entry
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._poll(), name=f"wfrun inboxes {self._folder}"
            )

        def stop() -> None:
            if self._watched.get(name) is entry:
                del self._watched[name]

        return stop

    async def _poll(self) -> None:
        while self._watched:
            await asyncio.sleep(POLL)  # real time, whatever the clock: a sender is real
            try:
                with os.scandir(self._folder) as entries:
                    sizes = {e.name: e.stat().st_size for e in entries if e.name in self._watched}
            except OSError:
                sizes = {}  # no inbox yet (or none to believe: each run's read says why)
            for name, size in sizes.items():
                entry = self._watched.get(name)
                if entry is not None and entry[1][0] != size:
                    entry[1][0] = size
                    entry[0]()


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, InboxWatch]] = (
    weakref.WeakKeyDictionary()
)


def watch(inbox: Inbox, arrived: Callable[[], None]) -> Callable[[], None]:
    """Call ``arrived()`` when messages may have reached ``inbox`` (see `InboxWatch`)."""
    loop = asyncio.get_running_loop()
    folder = str(inbox.folder)
    by_folder = _watches.setdefault(loop, {})
    found = by_folder.get(folder)
    if found is None:
        found = by_folder[folder] = InboxWatch(folder)
    return found.watch(inbox, arrived)
