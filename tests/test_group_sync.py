"""Runs created at once share the fsync of their folder (a group commit), never a stale one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wfrun.local.store import GroupSync, RunStore

from conftest import new_run_fields


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll until the threads got there (a hang fails the test through its timeout)."""
    while not condition():
        time.sleep(0.001)


class SlowFsync:
    """An fsync that holds its first call until released, and counts the calls."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls = 0
        self.first_running = threading.Event()
        self.release = threading.Event()
        self.fail_first = fail_first

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == 1:
            self.first_running.set()
            self.release.wait(30)
            if self.fail_first:
                raise OSError(5, "the first fsync failed")


def start(group: GroupSync, fsync: SlowFsync, errors: list[BaseException]) -> threading.Thread:
    def call() -> None:
        try:
            group.sync(fsync)
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def test_callers_arriving_during_an_fsync_share_the_next_one_rather_than_that_one() -> None:
    group, fsync, errors = GroupSync(), SlowFsync(), []
    first = start(group, fsync, errors)
    assert fsync.first_running.wait(30)
    # These changed the folder after the running fsync began: it cannot cover them.
    waiting = [start(group, fsync, errors) for _ in range(5)]
    wait_for(lambda: group._asked == 6)  # the five asked
    assert fsync.calls == 1
    fsync.release.set()
    for thread in [first, *waiting]:
        thread.join(30)
    assert errors == []
    assert fsync.calls == 2  # one more, for all five


def test_a_failed_fsync_fails_where_it_ran_and_the_others_sync_again() -> None:
    group, fsync, errors = GroupSync(), SlowFsync(fail_first=True), []
    first = start(group, fsync, errors)
    assert fsync.first_running.wait(30)
    second = start(group, fsync, errors)
    wait_for(lambda: group._asked == 2)
    fsync.release.set()
    first.join(30)
    second.join(30)
    assert [str(e) for e in errors] == ["[Errno 5] the first fsync failed"]
    assert fsync.calls == 2


def test_runs_created_one_after_another_each_get_a_folder_fsync(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfrun.clock import SystemClock

    store = RunStore(home)
    synced: list[Path] = []
    monkeypatch.setattr(store, "sync_folder", synced.append)
    for run_id in ("a", "b"):
        writer, _ = store.create(new_run_fields(run_id), SystemClock())
        writer.close()
    assert synced.count(store.runs_dir) == 2  # none served by an fsync before its link
