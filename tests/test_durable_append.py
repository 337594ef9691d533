"""How a history grows: space reserved ahead, events written in place, the zero tail trimmed.

A live run's file ends in zeros (space reserved for its next events), and so does the file of
a process killed before its trim at close. Every reader takes those zeros for the end of the
file, never for damage; a torn line followed by zeros is a torn tail, which a resume cuts
off. Where the OS cannot reserve, or the disk has no room to, the events are appended as
before, and nothing is lost.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
from pathlib import Path

import orjson
import pytest
from test_faults import DiskFullAt, completed_steps, completed_steps_of

import wfrun as workflows
from wfrun.local.store import RunStore

from conftest import (
    attempts,
    cli,
    hold,
    kill_after_marker,
    list_runs_json,
    release,
    run_wfrun,
    spawn_wfrun,
    stopping_at,
    wait_for_marker,
    wf,
)
from flows.steps import StepsWorkflow

STEPS = f"{wf('steps')}:StepsWorkflow"
ZEROS = bytes(70_000)  # more than a first reservation: the tail a crash leaves can be long


def run_steps(home: Path, count: int = 3, run_id: str = "r") -> list[int]:
    return asyncio.run(
        workflows.execute_workflow(StepsWorkflow, {"count": count}, execution_id=run_id, home=home)
    )


def full_run_lines(home: Path, run_id: str, count: int = 3) -> list[bytes]:
    """The lines of a finished run of ``count`` steps, made in a home of its own."""
    run_steps(home, count, run_id=run_id)
    return RunStore(home).path(run_id).read_bytes().splitlines(keepends=True)


def plant(home: Path, run_id: str, data: bytes) -> Path:
    """A run file holding ``data``, as a crash (or a live process) left it."""
    path = RunStore(home).path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def content(data: bytes) -> bytes:
    return data.rstrip(b"\0")


def assert_resumes_once(home: Path, log: Path, run_id: str, done: set[int]) -> None:
    """A resume finishes the run, runs no completed step again, and leaves no zero tail."""
    resumed = asyncio.run(workflows.resume_workflow(run_id, home=home))
    assert resumed == [10 * n for n in range(1, 7)]
    for n in done:
        assert attempts(log, f"step{n}") == 1, n
    path = RunStore(home).path(run_id)
    assert not path.read_bytes().endswith(b"\0")
    assert completed_steps(path) == set(range(1, 7))


# -- a live run, a closed run ----------------------------------------------------------------


def test_a_closed_run_file_has_no_zero_tail(home: Path) -> None:
    run_steps(home)
    data = RunStore(home).path("r").read_bytes()
    assert data.endswith(b"}\n")
    assert b"\0" not in data


def test_runs_sharing_a_process_trim_their_files_though_they_close_them_between_writes(
    home: Path,
) -> None:
    async def together() -> list[list[int]]:
        runs = (
            workflows.execute_workflow(StepsWorkflow, {"count": 3}, execution_id=f"s{i}", home=home)
            for i in range(4)
        )
        return await asyncio.gather(*runs)

    assert asyncio.run(together()) == [[10, 20, 30]] * 4
    for i in range(4):
        data = RunStore(home).path(f"s{i}").read_bytes()
        assert data.endswith(b"}\n")
        assert b"\0" not in data


def test_a_live_run_file_ends_in_reserved_zeros_that_no_reader_takes_for_damage(
    home: Path, log: Path
) -> None:
    process = spawn_wfrun("start", STEPS, "--arg", "count=3", "--run-id", "live", env=hold("step2"))
    try:
        wait_for_marker(process, log, "step2")
        store = RunStore(home)
        path = store.path("live")
        data = path.read_bytes()
        assert data.endswith(bytes(1024))  # reserved, not yet written
        history = store.read("live")
        assert history.torn_tail == b""
        assert history.note is None
        assert history.stored == content(data)
        assert store.read_from(path, 0) == content(data)  # how `show --follow` reads on
        assert [run["status"] for run in list_runs_json()] == ["RUNNING"]
        shown = run_wfrun("show", "live")
        assert shown.returncode == 0, shown.stderr
        assert "torn" not in shown.stdout + shown.stderr
        listed = run_wfrun("history", "live")
        assert listed.returncode == 0, listed.stderr
        assert "torn" not in listed.stdout + listed.stderr
    finally:
        release(log, "step2")
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert not RunStore(home).path("live").read_bytes().endswith(b"\0")


# -- what a crash leaves: zeros, a torn line and zeros ---------------------------------------


def test_a_zero_tail_after_a_crash_is_the_end_of_the_file_for_every_reader(
    isolated: Path, home: Path, log: Path
) -> None:
    lines = full_run_lines(isolated / "model", "z")
    intact = b"".join(lines[:5])  # one step completed; the run was interrupted
    path = plant(home, "z", intact + ZEROS)
    store = RunStore(home)
    history = store.read("z")
    assert len(history.events) == 5
    assert history.torn_tail == b""
    assert history.note is None
    assert store.read_from(path, 0) == intact
    assert store.read_from(path, len(intact)) == b""
    [listed] = list_runs_json()
    assert listed["status"] == "INTERRUPTED"
    shown = cli("show", "z")
    assert shown.exit_code == 0, shown.output
    assert "torn" not in shown.output
    exported = cli("history", "z", "--json")
    assert exported.exit_code == 0, exported.output
    assert "\0" not in exported.output
    assert "torn" not in exported.output
    rows = cli("history", "z")
    assert rows.exit_code == 0, rows.output
    assert "torn" not in rows.output


def test_resume_after_a_zero_tail_appends_at_the_end_of_the_events(
    isolated: Path, home: Path, log: Path
) -> None:
    lines = full_run_lines(isolated / "model", "z", count=6)
    path = plant(home, "z", b"".join(lines[:5]) + ZEROS)
    done = completed_steps(path)
    assert done
    assert_resumes_once(home, log, "z", done)
    resumed = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert resumed[5]["type"] == "RunResumed"
    assert resumed[5].get("repaired") is None  # zeros are no damage: nothing to repair


def test_a_torn_line_followed_by_zeros_is_a_torn_tail_that_resume_cuts_off(
    isolated: Path, home: Path, log: Path
) -> None:
    lines = full_run_lines(isolated / "model", "t", count=6)
    torn = lines[5][:30]
    path = plant(home, "t", b"".join(lines[:5]) + torn + ZEROS)
    history = RunStore(home).read("t")
    assert history.torn_tail == torn
    assert [run["status"] for run in list_runs_json()] == ["INTERRUPTED"]
    assert cli("show", "t").exit_code == 0
    done = completed_steps_of(path, b"".join(lines[:5]))
    assert_resumes_once(home, log, "t", done)
    events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert "torn" in events[5]["repaired"]


def test_a_torn_line_whose_first_bytes_never_reached_the_disk_is_a_torn_tail(
    isolated: Path, home: Path
) -> None:
    # A power cut can keep a later page of an unsynced line and lose an earlier one, which
    # reads as zeros (reserved space): still the start of one line, never acknowledged.
    lines = full_run_lines(isolated / "model", "p")
    gap = bytes(20) + lines[5][20:40]
    plant(home, "p", b"".join(lines[:5]) + gap + ZEROS)
    history = RunStore(home).read("p")
    assert len(history.events) == 5
    assert history.torn_tail == gap


# -- kill -9 where the file has just grown, and where it is trimmed -------------------------


@pytest.mark.slow
def test_a_kill_between_a_reservation_and_its_first_write_loses_no_completed_step(
    home: Path, log: Path
) -> None:
    process = stopping_at("space-reserved", "start", STEPS, "--arg", "count=6", "--run-id", "g")
    kill_after_marker(process, log, "space-reserved")
    assert process.returncode == -signal.SIGKILL
    path = RunStore(home).path("g")
    data = path.read_bytes()
    assert data.endswith(bytes(1024))  # the new reservation, nothing written in it
    history = RunStore(home).read("g")
    assert history.torn_tail == b""
    assert history.stored == content(data)
    done = completed_steps(path)
    assert done  # the stop came mid-run, after a step was recorded
    assert_resumes_once(home, log, "g", done)


@pytest.mark.slow
def test_a_kill_before_the_trim_at_close_leaves_a_completed_run_that_reads_whole(
    home: Path, log: Path
) -> None:
    process = stopping_at("trimming", "start", STEPS, "--arg", "count=6", "--run-id", "c")
    kill_after_marker(process, log, "trimming")
    assert process.returncode == -signal.SIGKILL
    path = RunStore(home).path("c")
    assert path.read_bytes().endswith(b"\0")
    assert [run["status"] for run in list_runs_json()] == ["COMPLETED"]
    shown = run_wfrun("show", "c")
    assert shown.returncode == 0, shown.stderr
    assert "torn" not in shown.stdout + shown.stderr
    assert completed_steps(path) == set(range(1, 7))
    assert_resumes_once(home, log, "c", set(range(1, 7)))  # and its resume trims the file


# -- where space cannot be reserved ----------------------------------------------------------


def test_without_posix_fallocate_a_run_appends_and_fsyncs_as_before(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "posix_fallocate")

    def no_fdatasync(fd: int) -> None:
        raise AssertionError("fdatasync without reserved space")

    monkeypatch.setattr(os, "fdatasync", no_fdatasync)
    assert run_steps(home) == [10, 20, 30]
    assert completed_steps(RunStore(home).path("r")) == {1, 2, 3}


def test_a_file_system_that_cannot_reserve_gets_appends_and_fsyncs(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    def no_fdatasync(fd: int) -> None:
        raise AssertionError("fdatasync without reserved space")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    monkeypatch.setattr(os, "fdatasync", no_fdatasync)
    assert run_steps(home) == [10, 20, 30]
    assert completed_steps(RunStore(home).path("r")) == {1, 2, 3}


def test_a_full_disk_at_reservation_writes_the_events_unreserved(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = []

    def full(fd: int, offset: int, length: int) -> None:
        refused.append(length)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    assert run_steps(home) == [10, 20, 30]
    assert refused
    data = RunStore(home).path("r").read_bytes()
    assert b"\0" not in data
    assert completed_steps(RunStore(home).path("r")) == {1, 2, 3}


def test_a_full_disk_at_reservation_and_at_the_write_stops_cleanly_and_resume_finishes(
    isolated: Path, home: Path, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as faulty:
        faulty.setattr(os, "posix_fallocate", full)
        faulty.setattr(RunStore, "write", DiskFullAt(1500))  # the first step or two fit
        with pytest.raises(workflows.HistoryIOError, match="the disk is full"):
            run_steps(home, count=6)
    path = RunStore(home).path("r")
    done = completed_steps(path)  # whole events only: the half-written one was cut off
    assert run_steps(home, count=6) == [10 * n for n in range(1, 7)]
    for n in done:
        assert attempts(log, f"step{n}") == 1, n
    assert completed_steps(path) == set(range(1, 7))
