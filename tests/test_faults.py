"""A failing disk never corrupts a history: the run stops with exit 74, and resumes once fixed.

Faults are real where this machine allows it (a size limit, a full and a read-only file
system, a FIFO, a folder, a link) and injected where only injection reaches every byte (a
writer that fails at byte N, for every N of a small run).
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.local.history import parse_history
from wfrun.local.store import RunStore

from conftest import attempts, cli, run_wfrun, spawn_wfrun, wait_for_file, wf
from flows.steps import StepsWorkflow

STEPS = f"{wf('steps')}:StepsWorkflow"


class DiskFullAt:
    """``os.write`` for history files that stops at byte ``limit``: a short write, then ENOSPC."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def __call__(self, fd: int, data: memoryview) -> int:
        if self.left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.write(fd, data[: self.left])
        self.left -= written
        return written


def run_steps(home: Path, count: int = 2) -> list[int]:
    return asyncio.run(
        workflows.execute_workflow(StepsWorkflow, {"count": count}, execution_id="r", home=home)
    )


def completed_steps(path: Path) -> set[int]:
    history = parse_history(path, path.read_bytes())
    assert not history.torn_tail, "a failed write must leave whole events only"
    return completed_steps_of(path, path.read_bytes())


def completed_steps_of(path: Path, data: bytes) -> set[int]:
    history = parse_history(path, data)
    scheduled = {e.seq: e.input["n"] for e in history.events if e.type == "ActivityScheduled"}
    return {scheduled[e.seq] for e in history.events if e.type == "ActivityCompleted"}


@pytest.mark.slow
def test_a_write_failing_at_any_byte_stops_the_run_and_resume_finishes_it(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_steps(isolated / "measure")
    size = RunStore(isolated / "measure").path("r").stat().st_size
    for limit in range(size):
        home, log = isolated / f"home{limit}", isolated / f"log{limit}"
        log.mkdir()
        monkeypatch.setenv("WFRUN_TEST_LOG", str(log))
        path = RunStore(home).path("r")
        with monkeypatch.context() as faulty:
            faulty.setattr(RunStore, "write", DiskFullAt(limit))
            stopped: workflows.HistoryIOError | None = None
            try:
                run_steps(home)
            except workflows.HistoryIOError as exc:
                stopped = exc
        if stopped is None:  # durations vary in length: this run happened to fit
            assert path.stat().st_size <= limit
        else:
            assert "the disk is full" in str(stopped)
        done = completed_steps(path) if path.exists() else set()
        assert run_steps(home) == [10, 20], limit  # space is back: start/resume finishes
        for n in done:
            assert attempts(log, f"step{n}") == 1, (limit, n)  # recorded: never run again
        assert completed_steps(path) == {1, 2}


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EIO, "an I/O error"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission denied"),
        (errno.EFBIG, "too large"),
        (errno.EDQUOT, "quota"),
    ],
)
def test_each_os_error_on_a_write_is_a_clean_exit_74_saying_what_failed(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, code: int, said: str
) -> None:
    def failing(fd: int, data: memoryview) -> int:
        raise OSError(code, os.strerror(code))

    assert cli("start", STEPS, "--arg", "count=2", "--run-id", "io").exit_code == 0
    cut = RunStore().path("io")
    cut.write_bytes(b"".join(cut.read_bytes().splitlines(keepends=True)[:4]))
    before = cut.read_bytes()
    monkeypatch.setattr(RunStore, "write", staticmethod(failing))
    result = cli("resume", "io")
    assert result.exit_code == 74, result.output
    assert said in result.stderr
    assert cut.read_bytes() == before  # nothing half-written


@pytest.mark.slow
def test_a_crash_after_any_event_resumes_without_rerunning_what_completed(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_steps(isolated / "full", count=3)
    lines = RunStore(isolated / "full").path("r").read_bytes().splitlines(keepends=True)
    for keep in range(1, len(lines) + 1):  # what a crash right after event `keep` leaves
        home, log = isolated / f"home{keep}", isolated / f"log{keep}"
        log.mkdir()
        monkeypatch.setenv("WFRUN_TEST_LOG", str(log))
        path = RunStore(home).path("r")
        path.parent.mkdir(parents=True, mode=0o700)
        path.write_bytes(b"".join(lines[:keep]))
        path.chmod(0o600)
        done = completed_steps(path)
        assert run_steps(home, count=3) == [10, 20, 30], keep
        for n in (1, 2, 3):
            assert attempts(log, f"step{n}") == (0 if n in done else 1), (keep, n)


@pytest.mark.slow
def test_a_crash_at_any_byte_leaves_a_tail_that_resume_repairs(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_steps(isolated / "full")
    data = RunStore(isolated / "full").path("r").read_bytes()
    first_line = data.index(b"\n") + 1
    for size in range(first_line, len(data)):
        home, log = isolated / f"home{size}", isolated / f"log{size}"
        log.mkdir()
        monkeypatch.setenv("WFRUN_TEST_LOG", str(log))
        path = RunStore(home).path("r")
        path.parent.mkdir(parents=True, mode=0o700)
        path.write_bytes(data[:size])
        path.chmod(0o600)
        intact = data[: data.rindex(b"\n", 0, size) + 1]
        done = completed_steps_of(path, intact)
        assert run_steps(home) == [10, 20], size
        for n in done:
            assert attempts(log, f"step{n}") == 0, (size, n)


def test_a_file_size_limit_stops_the_run_with_exit_74_and_resume_finishes_it(
    home: Path, log: Path
) -> None:
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))

    stopped = subprocess.run(
        [sys.executable, "-m", "wfrun", "start", STEPS, "--arg", "count=8", "--run-id", "f"],
        capture_output=True,
        text=True,
        preexec_fn=limited,
        timeout=60,
    )
    assert stopped.returncode == 74, stopped.stderr
    assert "too large" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    done = completed_steps(RunStore(home).path("f"))
    resumed = run_wfrun("resume", "f", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == [10 * n for n in range(1, 9)]
    assert len(done) < 8
    for n in done:
        assert attempts(log, f"step{n}") == 1


# -- real file systems: full and read-only (root can mount a tmpfs; others skip) ------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "wfrun-test", str(mount)],
        capture_output=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)


def test_a_full_disk_stops_the_run_with_exit_74_and_resume_finishes_it_once_space_is_back(
    tmpfs: Path, log: Path
) -> None:
    home = tmpfs / "home"
    env = {"WFRUN_HOME": str(home)}
    big = f"{wf('faults')}:BigResultsWorkflow"
    stopped = run_wfrun("start", big, "--arg", "count=6", "--run-id", "full", env=env)
    assert stopped.returncode == 74, stopped.stderr
    assert "the disk is full" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    done = completed_steps(home / "runs" / "full.jsonl")
    remount(tmpfs, "size=4m")
    resumed = run_wfrun("resume", "full", "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == [12_000] * 6
    for n in done:
        assert attempts(log, f"big{n}") == 1


def test_a_read_only_file_system_is_exit_74_for_start_and_resume(tmpfs: Path) -> None:
    env = {"WFRUN_HOME": str(tmpfs / "home")}
    first = run_wfrun("start", STEPS, "--arg", "count=1", "--run-id", "ro", env=env)
    assert first.returncode == 0, first.stderr
    (tmpfs / "home" / "runs" / "ro.jsonl").write_bytes(
        b"".join((tmpfs / "home" / "runs" / "ro.jsonl").read_bytes().splitlines(True)[:1])
    )
    remount(tmpfs, "ro")
    for args in (["resume", "ro"], ["start", STEPS, "--arg", "count=1", "--run-id", "other"]):
        result = run_wfrun(*args, env=env)
        assert result.returncode == 74, result.stderr
        assert "read-only" in result.stderr
        assert "Traceback" not in result.stderr
    remount(tmpfs, "rw")
    assert run_wfrun("resume", "ro", env=env).returncode == 0


# -- files that are not what they claim ---------------------------------------------------------


@pytest.fixture
def planted(home: Path) -> Path:
    """A runs folder made by wfrun (a real run in it), for tests to plant things in."""
    assert cli("start", STEPS, "--arg", "count=1", "--run-id", "real").exit_code == 0
    return home / "runs"


def plant(runs: Path, kind: str) -> None:
    path = runs / "odd.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "link to a real run":
        path.symlink_to(runs / "real.jsonl")
    elif kind == "dangling link":
        path.symlink_to(runs / "gone.jsonl")
    elif kind == "device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers


KINDS = ["fifo", "folder", "link to /dev/zero", "link to a real run", "dangling link"]
if os.geteuid() == 0:  # making a device node needs root
    KINDS.append("device")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["resume", "replay", "history", "show"])
def test_a_run_file_that_is_not_a_regular_file_is_refused_with_exit_74(
    planted: Path, kind: str, command: str
) -> None:
    plant(planted, kind)
    result = cli(command, "odd")  # a FIFO must not block: the suite's timeout would say so
    assert result.exit_code == 74, result.stderr
    assert "refusing" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_list_skips_what_is_not_a_run_file_with_a_warning(planted: Path, kind: str) -> None:
    plant(planted, kind)
    result = cli("list", "--json")
    assert result.exit_code == 0, result.stderr
    assert [run["run_id"] for run in orjson.loads(result.stdout)] == ["real"]
    assert "skipped" in result.stderr
    assert "odd.jsonl" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_resume_all_skips_what_is_not_a_run_file_with_a_warning(planted: Path, kind: str) -> None:
    plant(planted, kind)
    result = cli("resume", "--all", "--json")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == []
    assert "skipped" in result.stderr


def test_a_runs_folder_others_can_write_to_is_refused_before_importing_anything(
    planted: Path, isolated: Path
) -> None:
    marker = isolated / "imported"
    module = isolated / "planted.py"
    module.write_text(f"open({str(marker)!r}, 'w').close()\n")
    history = (
        (planted / "real.jsonl").read_bytes().replace(wf("steps").encode(), str(module).encode())
    )
    (planted / "real.jsonl").write_bytes(history)
    planted.chmod(0o777)
    for command in ("resume", "replay"):
        result = cli(command, "real")
        assert result.exit_code == 74, result.stderr
        assert "others can write to it" in result.stderr
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_run_file_owned_by_someone_else_is_refused(planted: Path) -> None:
    os.chown(planted / "real.jsonl", 65534, 65534)
    result = cli("resume", "real")
    assert result.exit_code == 74, result.stderr
    assert "not to you" in result.stderr


# -- no two executions at once --------------------------------------------------------------------


@pytest.mark.slow
def test_after_sigterm_the_lock_is_held_until_the_thread_activity_returns(
    isolated: Path, log: Path
) -> None:
    markers = isolated / "markers"
    markers.mkdir()
    held = f"{wf('faults')}:HeldWorkflow"
    process = spawn_wfrun("start", held, "--arg", f"marker_dir={markers}", "--run-id", "held")
    wait_for_file(markers / "started1", process)
    process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    for line in process.stderr:  # the run has stopped; only the thread holds the lock now
        if "interrupted" in line:
            break
    second = run_wfrun("resume", "held")
    assert second.returncode == 5, second.stderr  # the thread still runs: so does the lock
    assert attempts(log, "held") == 1
    (markers / "release").touch()
    assert process.wait(timeout=60) == 130
    resumed = run_wfrun("resume", "held", "--quiet")
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_a_process_forked_by_an_activity_does_not_hold_the_run(isolated: Path) -> None:
    markers = isolated / "markers"
    markers.mkdir()
    forks = f"{wf('faults')}:ForkingWorkflow"
    try:
        result = run_wfrun("start", forks, "--arg", f"marker_dir={markers}", "--run-id", "fk")
        assert result.returncode == 0, result.stderr
        wait_for_file(markers / "child")
        assert not RunStore().is_locked("fk")  # the child lives on, without the lock
    finally:
        (markers / "release").touch()


def test_resume_and_replay_say_which_code_they_import_and_from_where(
    isolated: Path, log: Path
) -> None:
    assert cli("start", STEPS, "--arg", "count=2", "--run-id", "said").exit_code == 0
    cut = RunStore().path("said")
    cut.write_bytes(b"".join(cut.read_bytes().splitlines(keepends=True)[:4]))
    for command in ("replay", "resume"):
        result = cli(command, "said")
        assert result.exit_code == 0, result.stderr
        assert f"runs {STEPS} (imported from {isolated})" in result.stderr


# -- interrupted at any moment --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3])
def test_ctrl_c_or_sigterm_during_start_up_exits_130_without_a_traceback(
    home: Path, signum: int, delay: float
) -> None:
    # The signal is blocked until wfrun's first code unblocks it: sent at any delay, it lands
    # at the earliest moment wfrun can handle it or later, never in the interpreter's own
    # start-up (which no program can handle), so the test does not depend on machine speed.
    def blocked() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    process = subprocess.Popen(  # three 1 s steps: the signal always finds it running
        [
            sys.executable,
            "-m",
            "_wfrun_launcher",
            "start",
            STEPS,
            "--arg",
            "count=3",
            "--arg",
            "delay=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=blocked,
    )
    time.sleep(delay)  # where in start-up the signal lands; the outcome must not depend on it
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr


def test_a_write_failing_on_a_heartbeat_stops_the_run_with_the_error(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from flows.faults import BeatingWorkflow

    monkeypatch.setattr(RunStore, "write", DiskFullAt(900))  # past the first 3 lines
    with pytest.raises(workflows.HistoryIOError, match="the disk is full"):
        asyncio.run(workflows.execute_workflow(BeatingWorkflow, execution_id="hb"))
    assert not [r for r in caplog.records if "Exception in callback" in r.getMessage()]
    events = parse_history(RunStore().path("hb"), RunStore().path("hb").read_bytes()).events
    assert [e.type for e in events][:3] == [
        "WorkflowStarted",
        "ActivityScheduled",
        "ActivityStarted",
    ]


@pytest.mark.slow
def test_a_signal_after_the_command_finished_ends_a_process_that_waits_for_a_thread(
    isolated: Path,
) -> None:
    markers = isolated / "markers"
    markers.mkdir()
    held = f"{wf('faults')}:HeldWorkflow"
    process = spawn_wfrun("start", held, "--arg", f"marker_dir={markers}", "--run-id", "h2")
    wait_for_file(markers / "started1", process)
    process.send_signal(signal.SIGTERM)  # the run stops; its thread goes on, held
    assert process.stderr is not None
    for line in process.stderr:
        if "interrupted" in line:
            break
    process.send_signal(signal.SIGTERM)  # and now the process itself, at once
    try:
        assert process.wait(timeout=30) == 130
    finally:
        (markers / "release").touch()


def test_a_run_file_others_can_write_to_is_refused(planted: Path) -> None:
    (planted / "real.jsonl").chmod(0o666)
    result = cli("replay", "real")
    assert result.exit_code == 74, result.output
    assert "others can write to it" in result.stderr


def test_an_interrupt_during_wfruns_own_imports_is_noted_not_raised_inside_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Raised inside an import, it can land in a C extension's module set-up (orjson's then
    # crashes with SIGSEGV): noted, and acted on once the imports are done.
    import _wfrun_launcher

    monkeypatch.setattr(_wfrun_launcher, "_importing", True)
    monkeypatch.setattr(_wfrun_launcher, "pending", False)
    _wfrun_launcher._interrupt(signal.SIGINT, None)
    assert _wfrun_launcher.pending


def test_an_interrupt_python_ignored_during_start_up_still_ends_the_run_with_130(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python ignores an exception raised in a weakref callback (an import's module lock): the
    # launcher remembers the signal, and the command leaves before running anything.
    import _wfrun_launcher

    monkeypatch.setattr(_wfrun_launcher, "pending", True)
    result = cli("start", STEPS, "--arg", "count=1", "--run-id", "i")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert (
        not (home / "runs" / "i.jsonl").exists()
        or "ActivityStarted" not in (home / "runs" / "i.jsonl").read_text()
    )
