"""Run locks: one process at a time per run, without a file descriptor per run.

A run is locked by a one-byte write lock in ``<home>/runs/.locks``, at an offset hashed from
its run id (62 bits: two ids of one home share a byte with odds of about 2^-62 per pair, and
then one merely waits for the other). The file itself stays empty: a lock may lie past the
end of a file.

Why not the ``flock`` on each history file that wfrun used before: it needs that file open
for as long as the run is held, so a process with 2,000 live runs needed 2,000 descriptors,
and a run waiting for a timer or a message pinned one for hours. Here a process holds one
descriptor per home, whatever the number of its runs, and a history file is open only while
it is being written (`wfrun.local.store.HistoryWriter`). The guarantees stay those of a
kernel lock:

- *One process per run.* Another process's ``F_SETLK`` on the same byte fails. Within the
  process, where every lock belongs to the same owner (the one open file description, or
  the process itself), an in-memory registry refuses a second holder.
- *Released however the process dies.* The kernel drops the locks of a dead process (OFD
  locks with the last descriptor of their open file description, POSIX locks with the
  process), kill -9 included.
- *Seen by others.* `LockFile.is_held` asks with ``F_GETLK``, which reports another
  process's lock; this process's own are in the registry.
- *Not inherited.* A child forked by an activity gets a copy of the descriptor: `forget_in_child`
  closes it there without unlocking (an unlock through a shared open file description would
  release the parent's lock), and the parent's locks stay. ``O_CLOEXEC`` closes it on exec.

Weighed and left out: raising the soft ``RLIMIT_NOFILE`` to the hard limit, as Go's runtime
does at start-up. It would only move the wall (the hard limit is 1,024 on some systems, and
many runs would still pin a descriptor each for as long as they wait), and a library should
not change its host process's limits. With the lock here and history files opened only to be
written or synced (`wfrun.local.syncs`), a process needs at most ``SYNC_SLOTS`` (64) history
descriptors per event loop, whatever its number of runs: the slots are the admission.

Open file description locks (``F_OFD_SETLK``, Linux) are used where the OS has them: they
belong to the open file, so closing some other descriptor of ``.locks`` (a ``list`` run in this
very process, say) cannot drop them. Elsewhere classic POSIX record locks do the same work,
with their one trap avoided: they vanish when the process closes *any* descriptor of the file,
so a process opens ``.locks`` through this module only, once, and asks with that descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ..errors import RunLockedError

#: The name of a home's lock file, in its runs folder (names starting with "." are no runs).
LOCK_FILE: Final = ".locks"

_SET: Final[int] = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)
_GET: Final[int] = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)
#: ``struct flock`` as Linux lays it out: type, whence, start, length, pid (0 for OFD locks).
_FLOCK: Final = struct.Struct("@hhqqi4x")


def offset(run_id: str) -> int:
    """The byte of ``.locks`` that stands for ``run_id``."""
    digest = hashlib.blake2b(run_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2  # below 2^62: a valid off_t on any platform


class LockFile:
    """The run locks of one home held by this process, through one descriptor.

    The descriptor is open while this process holds any lock (and closed when it holds none,
    so that a process that visits many homes does not keep one descriptor each).
    """

    def __init__(
        self, path: Path, opener: Callable[[Path, int], int], folder: Path | None = None
    ) -> None:
        self.path = path
        #: The runs folder the lock file is in (as it was named when found: the caller's own
        #: path object, which `lock_file` then recognises without a comparison).
        self.folder = folder or path.parent
        #: Opens a file of the home after its trust checks (`RunStore.open_checked`).
        self._open = opener
        self._fd = -1
        self._held: dict[int, str] = {}
        #: The offsets of the runs held, by run id (a hash each: asked once per run held).
        self._offsets: dict[str, int] = {}
        # Locks are released from the threads that end a run's last attempt, too.
        self._mutex = threading.Lock()

    def acquire(self, run_id: str, refusal: Callable[[], RunLockedError]) -> None:
        """Hold ``run_id`` for this process, or raise ``refusal()`` if anyone holds it."""
        at = offset(run_id)
        with self._mutex:
            if at in self._held:
                raise refusal()
            if self._fd < 0:
                self._fd = self._open(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.fcntl(self._fd, _SET, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, at, 1, 0))
            except OSError as exc:
                self._close_if_unused()
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise refusal() from None
                raise
            self._held[at] = run_id
            self._offsets[run_id] = at

    def release(self, run_id: str) -> None:
        """Let ``run_id`` go (a no-op if this process does not hold it)."""
        with self._mutex:
            at = self._offsets.pop(run_id, None)
            if at is None or self._held.pop(at, None) is None:
                return
            with contextlib.suppress(OSError):  # EBADF after a fork: nothing left to unlock
                fcntl.fcntl(self._fd, _SET, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, at, 1, 0))
            self._close_if_unused()

    def is_held(self, run_id: str) -> bool:
        """Whether a live process (this one included) holds ``run_id``."""
        at = offset(run_id)
        with self._mutex:
            if at in self._held:
                return True
            if self._fd < 0:
                try:
                    self._fd = self._open(self.path, os.O_RDWR)
                except FileNotFoundError:
                    return False  # no run of this home was ever locked
            try:
                asked = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, at, 1, 0)
                answer = fcntl.fcntl(self._fd, _GET, asked)
            finally:
                self._close_if_unused()
        return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)

    def changed_ns(self) -> int:
        """When the lock file was made or last changed (its ctime, in ns; while a lock is
        held). A lock taken on it says nothing of a creator older than that: had the file
        been removed meanwhile, a lock then held on the old one is not seen on this one."""
        with self._mutex:
            return os.fstat(self._fd).st_ctime_ns

    def holds_any(self) -> bool:
        """Whether this process holds any run of the home."""
        return bool(self._held)

    def _close_if_unused(self) -> None:
        if not self._held and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def forget(self) -> None:
        """In a forked child: close the copy of the descriptor, never unlocking anything."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1
        self._held.clear()
        self._offsets.clear()
        self._mutex = threading.Lock()  # the parent's may have been taken at the fork


_lock_files: dict[tuple[int, int], LockFile] = {}
_registry_mutex = threading.Lock()


def lock_file(
    runs_dir: Path, opener: Callable[[Path, int], int], info: os.stat_result | None = None
) -> LockFile:
    """This process's `LockFile` of the home whose runs folder is ``runs_dir`` (one per
    folder, however it is named: two descriptors would be two lock owners).

    ``info``: the folder's status, when the caller has just checked it (a run created in a
    crowd then costs the loop one system call less)."""
    info = info or os.stat(runs_dir)
    key = (info.st_dev, info.st_ino)
    with _registry_mutex:
        found = _lock_files.get(key)
        # The same path object, as a rule (`RunStore` keeps one per home): no comparison.
        renamed = found is not None and found.folder is not runs_dir and found.folder != runs_dir
        if found is None or (renamed and not found.holds_any()):
            # New, or a folder that was deleted and whose inode number came back for another
            # (temporary homes do that): a folder reached by another name keeps its locks.
            found = _lock_files[key] = LockFile(runs_dir / LOCK_FILE, opener, runs_dir)
        return found


def forget_in_child() -> None:
    """A process forked by an activity holds no run: see the module docstring."""
    global _registry_mutex
    _registry_mutex = threading.Lock()
    for each in _lock_files.values():
        each.forget()
