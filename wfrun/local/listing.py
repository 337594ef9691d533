"""What ``wfrun list`` needs of each run file, and the index that remembers it.

`RunEnds` is what a run's line of the listing is made from: its first and last events, read
and checked by the store as every read is. With thousands of runs, parsing those two events
per file is most of what listing costs, so `ListIndex` remembers each file's `RunEnds` under
the file's identity: inode, size, and modification and change times (no user can set a change
time), in ``runs/.list-index``. A damaged file is not remembered: it is read at each listing.

The index is never believed over a file. An entry is used only while its file's identity is
the same; a file changed in the last two seconds is not remembered at all, since a write in
the same clock tick as the listing would leave its times as they were (git's "racily clean"
rule); and what a status depends on besides the file (its lock, its inbox, its code, its
successor) is asked afresh at each listing. A lost, damaged or foreign index is rebuilt, one
that cannot be written (a read-only home) is not kept: listing works the same, only slower.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import stat
import time
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from ..events import (
    TERMINAL,
    Event,
    RunBlocked,
    RunWaiting,
    WorkflowContinuedAsNew,
    WorkflowStarted,
    _is_timestamp,
    is_run_id,
)
from ..runs import RunStatus

#: The index's name in the runs folder: a dot file, which no run id can be.
INDEX: Final = ".list-index"
_VERSION: Final = 1
#: Files changed more recently than this (in ns) are read, never remembered.
_RACY: Final = 2_000_000_000
_STATUS: Final = {status.value: status for status in RunStatus}


@dataclass(frozen=True, slots=True)
class RunEnds:
    """What a run's first and last events say, as far as ``wfrun list`` shows it."""

    workflow: str
    started: str
    parent: str | None
    #: Where the run's code is (a BLOCKED run is tried again when it changes).
    target: str
    cwd: str
    #: What the last event says when no process runs the run (`RunStatus.after`).
    status: RunStatus
    #: The last event's time, when it ends the run.
    ended: str | None = None
    #: CONTINUED_AS_NEW: the run that carries on.
    successor: str | None = None
    #: BLOCKED: the code's fingerprint then, and the child that blocked it (if any).
    code: str | None = None
    child: str | None = None
    #: WAITING: until when, and how much of its inbox it had read.
    until: str | None = None
    inbox: int = 0

    @classmethod
    def of(cls, started: WorkflowStarted, final: Event) -> RunEnds:
        ends = cls(
            started.workflow,
            started.ts,
            started.parent,
            started.target,
            started.cwd,
            RunStatus.after(final),
            ended=final.ts if final.role == TERMINAL else None,
        )
        if isinstance(final, WorkflowContinuedAsNew):
            return replace(ends, successor=final.run_id)
        if isinstance(final, RunBlocked):
            return replace(ends, code=final.code, child=final.child)
        if isinstance(final, RunWaiting):
            return replace(ends, until=final.until, inbox=final.inbox)
        return ends

    @classmethod
    def from_record(cls, record: Any) -> RunEnds | None:
        """The ends an index entry holds; None if it is not what `record` writes (an index
        from another version, or edited: the file is read instead)."""
        if type(record) is not list or tuple(map(type, record)) not in _KINDS:
            return None
        status = _STATUS.get(record[5])
        if status is None:
            return None
        for at in (2, 7, 9):  # parent, successor, child: run ids
            if record[at] is not None and not is_run_id(record[at]):
                return None
        for at in (1, 6, 10):  # started, ended, until: times
            if record[at] is not None and not _is_timestamp(record[at]):
                return None
        workflow, started, parent, target, cwd, _, ended, successor, code, child, until, inbox = (
            record
        )
        return cls(
            workflow,
            started,
            parent,
            target,
            cwd,
            status,
            ended,
            successor,
            code,
            child,
            until,
            inbox,
        )

    def record(self) -> list[Any]:
        """The fields as JSON values, in order (what `from_record` reads back)."""
        return [getattr(self, name) for name in _NAMES]


_MAYBE: Final = (str, type(None))
#: The JSON types `RunEnds.record` writes, field by field: every combination of the optional
#: ones (checked with one lookup: a listing asks this for every run).
_KINDS: Final = frozenset(
    (str, str, parent, str, str, str, ended, successor, code, child, until, int)
    for parent, ended, successor, code, child, until in itertools.product(_MAYBE, repeat=6)
)

_NAMES: Final = tuple(RunEnds.__dataclass_fields__)

#: A file's identity: inode, size, modification and change times (ns).
Key = tuple[int, int, int, int]


def key_of(info: os.stat_result) -> Key:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class ListIndex:
    """The ends of each run file, by name, for files unchanged since they were read.

    Open on the runs folder's descriptor (which the store checked); `get` what is known,
    `put` what was read, then `save`: the index then holds exactly the files listed.
    """

    def __init__(self, folder: int) -> None:
        self._folder = folder
        self._known = self._load()
        self._now: dict[str, list[Any]] = {}
        self._changed = False

    def _load(self) -> dict[str, Any]:
        try:
            fd = os.open(INDEX, os.O_RDONLY | _SAFE, dir_fd=self._folder)
        except OSError:
            return {}
        try:
            info = os.fstat(fd)
            if not _private(info):  # not wfrun's: rebuilt, and replaced by one that is
                return {}
            data = os.pread(fd, info.st_size, 0)
        except OSError:
            return {}
        finally:
            os.close(fd)
        try:
            index = orjson.loads(data)
        except orjson.JSONDecodeError:
            return {}
        if type(index) is not dict or index.get("version") != _VERSION:
            return {}
        runs = index.get("runs")
        return runs if type(runs) is dict else {}

    def get(self, name: str, info: os.stat_result) -> RunEnds | None:
        """The ends of file ``name`` if it is known as it is now (``info``), else None."""
        entry = self._known.get(name)
        if type(entry) is not list or len(entry) != 5 or tuple(entry[:4]) != key_of(info):
            return None
        found = RunEnds.from_record(entry[4])
        if found is not None:
            self._now[name] = entry
        return found

    def put(self, name: str, info: os.stat_result, ends: RunEnds) -> None:
        """Remember the ends read from file ``name`` (unless it changed too recently to tell)."""
        if time.time_ns() - info.st_ctime_ns < _RACY:
            return
        self._now[name] = [*key_of(info), ends.record()]
        self._changed = True

    def save(self) -> None:
        """Write the index of the files listed, if it changed (an entry added, or one for a
        file gone or changed dropped); quietly not, if it cannot be written."""
        if not self._changed and len(self._now) == len(self._known):
            return
        data = orjson.dumps({"version": _VERSION, "runs": self._now})
        # Not ``.tmp``: ``.list-index.<pid>.<hex>.tmp`` would be the creation file of a run
        # called ``list-index``, which `RunStore.remove_stale_temporaries` may remove.
        temporary = f"{INDEX}.{os.getpid()}.{secrets.token_hex(4)}.new"
        try:
            fd = os.open(temporary, _CREATE, 0o600, dir_fd=self._folder)
        except OSError:
            return
        try:
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
            finally:
                os.close(fd)
            os.replace(temporary, INDEX, src_dir_fd=self._folder, dst_dir_fd=self._folder)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self._folder)


def _private(info: os.stat_result) -> bool:
    """A regular file of this user that nobody else can write to."""
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


_SAFE: Final = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _SAFE
