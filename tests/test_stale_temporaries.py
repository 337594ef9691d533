"""The temporary files of run creations cut short: ``resume --all`` removes those whose
creator is gone, and nothing else.

A run file is written under ``.<run-id>.<pid>.<hex>.tmp`` and linked into place; a kill -9 in
between leaves that file (a run's input, 0600), which no command shows. Its creator is known
by the run's lock, which the kernel drops when the process dies: a pid would be reused.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from wfrun.clock import SystemClock
from wfrun.local import store as store_module
from wfrun.local.store import RunStore

from conftest import (
    FLOWS,
    TESTS,
    kill_after_marker,
    new_run_fields,
    run_wfrun,
    stopping_at,
    wait_for_marker,
    wf,
)

STEPS = f"{wf('steps')}:StepsWorkflow"


def temporaries(home: Path) -> list[str]:
    return sorted(name for name in os.listdir(home / "runs") if name.endswith(".tmp"))


def plant(home: Path, name: str, data: bytes = b"{}\n") -> Path:
    """A file in the runs folder, as a creation cut short would leave it (after the home's
    lock file, which a creation makes first if it is not there)."""
    runs = home / "runs"
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(runs / ".locks", os.O_WRONLY | os.O_CREAT, 0o600))
    path = runs / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.close(fd)
    return path


# -- a real kill -9 --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_creation_killed_before_its_link_leaves_a_file_that_resume_all_removes(
    home: Path, log: Path
) -> None:
    process = stopping_at("before-link", "start", STEPS, "--arg", "count=1", "--run-id", "k")
    kill_after_marker(process, log, "before-link")
    assert process.returncode == -signal.SIGKILL
    left = temporaries(home)
    assert len(left) == 1
    assert left[0].startswith(".k.")
    assert os.stat(home / "runs" / left[0]).st_mode & 0o777 == 0o600
    resumed = run_wfrun("resume", "--all")
    assert resumed.returncode == 0, resumed.stderr
    assert temporaries(home) == []
    assert "removed 1 temporary file(s)" in resumed.stderr
    assert not (home / "runs" / "k.jsonl").exists()  # the run was never created


@pytest.mark.slow
def test_a_live_creators_temporary_file_is_left_alone(home: Path, log: Path) -> None:
    """The creator is alive (stopped before its link): its file stays; once it is killed,
    the next ``resume --all`` removes it."""
    process = stopping_at("before-link", "start", STEPS, "--arg", "count=1", "--run-id", "k")
    try:
        wait_for_marker(process, log, "before-link")
        left = temporaries(home)
        assert len(left) == 1
        resumed = run_wfrun("resume", "--all")
        assert resumed.returncode == 0, resumed.stderr
        assert temporaries(home) == left
        assert "removed" not in resumed.stderr
    finally:
        process.kill()
        process.communicate()
    resumed = run_wfrun("resume", "--all")
    assert resumed.returncode == 0, resumed.stderr
    assert temporaries(home) == []


@pytest.mark.slow
def test_a_kill_while_a_crowd_of_runs_is_created_leaves_files_that_resume_all_removes(
    home: Path, log: Path
) -> None:
    """200 runs created at once in one process (their links in sync threads); kill -9 once
    one link is held: every temporary file left is removed, every run present goes on."""
    crowd = [str(FLOWS / "crowd.py"), "200", "2", "c"]
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "crashpoints.py"), "--script", *crowd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WFRUN_TEST_STOP_AT": "before-link"},
    )
    kill_after_marker(process, log, "before-link")
    assert process.returncode == -signal.SIGKILL
    left = temporaries(home)
    assert left, "no creation was cut short"
    resumed = run_wfrun("resume", "--all", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert temporaries(home) == []
    assert f"removed {len(left)} temporary file(s)" in resumed.stderr
    store = RunStore(home)
    for run in store.list_runs():
        assert run.status.value == "COMPLETED", run


# -- what is removed, and what is not --------------------------------------------------------


def test_a_temporary_file_whose_run_nobody_holds_is_removed_whatever_pid_it_names(
    home: Path,
) -> None:
    """The pid in the name is not asked: here it is this very process's, alive."""
    plant(home, f".r.{os.getpid()}.0123abcd.tmp")
    plant(home, ".r.1.89abcdef.tmp")
    plant(home, ".a.b.77.00000000.tmp")  # a run id with dots in it
    assert sorted(RunStore(home).remove_stale_temporaries()) == sorted(
        [".a.b.77.00000000.tmp", f".r.{os.getpid()}.0123abcd.tmp", ".r.1.89abcdef.tmp"]
    )
    assert temporaries(home) == []


def test_a_temporary_file_of_a_run_this_process_holds_is_left_alone(home: Path) -> None:
    store = RunStore(home)
    plant(home, ".r.1.0123abcd.tmp")
    lock = store._lock("r")  # as a creation in this process holds it
    try:
        assert store.remove_stale_temporaries() == []
        assert temporaries(home) == [".r.1.0123abcd.tmp"]
    finally:
        lock.release("r")
    assert store.remove_stale_temporaries() == [".r.1.0123abcd.tmp"]


def test_names_of_another_shape_are_left_alone(home: Path) -> None:
    names = [
        ".r.tmp",  # no pid, no token
        ".r.12.0123abcd.tmp.x",
        ".r.12.0123ABCD.tmp",  # the token is lower-case hex
        ".r.x1.0123abcd.tmp",
        "..r.12.0123abcd.tmp",  # no run id starts with a dot
        "r.12.0123abcd.tmp",  # not hidden
        ".list-index.12.0123abcd.new",  # `wfrun list`'s index being written
    ]
    for name in names:
        plant(home, name)
    assert RunStore(home).remove_stale_temporaries() == []
    assert sorted(os.listdir(home / "runs")) == sorted([*names, ".locks"])


def test_a_link_with_a_temporary_name_is_neither_followed_nor_removed(
    home: Path, tmp_path: Path
) -> None:
    target = tmp_path / "precious"
    target.write_text("keep")
    (home / "runs").mkdir(parents=True, mode=0o700)
    (home / "runs" / ".r.1.0123abcd.tmp").symlink_to(target)
    warnings: list[str] = []
    assert RunStore(home).remove_stale_temporaries(warnings.append) == []
    assert (home / "runs" / ".r.1.0123abcd.tmp").is_symlink()
    assert target.read_text() == "keep"
    assert warnings == [f"left {home / 'runs' / '.r.1.0123abcd.tmp'} alone: it is a symbolic link"]


def test_a_temporary_file_others_may_write_to_is_left_alone(home: Path) -> None:
    path = plant(home, ".r.1.0123abcd.tmp")
    path.chmod(0o666)
    warnings: list[str] = []
    assert RunStore(home).remove_stale_temporaries(warnings.append) == []
    assert path.exists()
    assert warnings == [f"left {path} alone: others may write to it"]


def test_a_home_without_a_runs_folder_has_nothing_to_remove(home: Path) -> None:
    assert RunStore(home).remove_stale_temporaries() == []
    assert not (home / "runs").exists()


# -- the creator keeps its run locked while its temporary name may be used -------------------


def test_a_creation_cancelled_during_its_link_holds_the_run_until_the_link_is_done(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link goes on in its thread after a cancellation (a run half-created would be
    worse): until it is done, the run stays locked, so no sweep (and no other creator) can
    take the temporary name from under it."""
    store = RunStore(home)
    in_link = threading.Event()
    go_on = threading.Event()
    link = store_module._link_one

    def slow_link(temporary: Path, final: Path) -> None:
        in_link.set()
        go_on.wait()
        link(temporary, final)

    monkeypatch.setattr(store_module, "_link_one", slow_link)

    async def cancel_during_link() -> None:
        creating = asyncio.ensure_future(store.create_aside(new_run_fields("r"), SystemClock()))
        while not in_link.is_set():
            await asyncio.sleep(0.01)
        creating.cancel()
        with pytest.raises(asyncio.CancelledError):
            await creating

    try:
        asyncio.run(cancel_during_link())
        assert store.is_locked("r")
        assert len(temporaries(home)) == 1
    finally:
        go_on.set()
    for _ in range(1000):  # until the thread's done callback lets the run go
        if not store.is_locked("r"):
            break
        time.sleep(0.01)
    assert not store.is_locked("r")
    assert temporaries(home) == []
    assert (home / "runs" / "r.jsonl").exists()


@pytest.mark.slow
def test_a_live_creators_file_is_left_alone_even_if_the_lock_file_was_replaced(
    home: Path, log: Path
) -> None:
    """The creator's lock is a byte of ``runs/.locks``: once that file is removed (or
    replaced), a lock taken on the new one says nothing of a creator that locked the old one,
    so a temporary file older than the lock file is left alone."""
    process = stopping_at(
        "before-link",
        "start",
        f"{wf('steps')}:StepsWorkflow",
        "--arg",
        "count=1",
        "--run-id",
        "k",
    )
    try:
        wait_for_marker(process, log, "before-link")
        left = temporaries(home)
        assert len(left) == 1
        (home / "runs" / ".locks").unlink()  # a user's clean-up of hidden files, say
        resumed = run_wfrun("resume", "--all")
        assert resumed.returncode == 0, resumed.stderr
        assert temporaries(home) == left, resumed.stderr
    finally:
        process.kill()
        process.communicate()


def test_a_start_refused_while_its_run_is_not_yet_a_run_says_so(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While `resume --all` holds run ``r``'s lock to remove what a killed creation of it
    left, a ``start --run-id r`` (cron, the same minute) is refused as locked (exit 5), but
    not as a run "being executed": there is no run r yet."""
    plant(home, ".r.1.0123abcd.tmp")
    seen: list[subprocess.CompletedProcess[str]] = []
    remove = store_module.RunStore._remove_stale

    def meanwhile(self: RunStore, folder: int, name: str, since: int, warn: Any) -> bool:
        seen.append(
            run_wfrun("start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=1", "--run-id", "r")
        )
        return remove(self, folder, name, since, warn)

    monkeypatch.setattr(store_module.RunStore, "_remove_stale", meanwhile)
    assert RunStore(home).remove_stale_temporaries() == [".r.1.0123abcd.tmp"]
    assert seen[0].returncode == 5, seen[0].stderr
    assert "being created by another live process" in seen[0].stderr
    assert "being executed" not in seen[0].stderr
