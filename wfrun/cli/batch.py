"""``wfrun resume --all``: every run that can go on, each in a process of its own.

A process of its own per run, because modules are cached by name: two projects that both
have a ``flows.py`` must each run their own code. Each process has a time limit; past it, it
is stopped as Ctrl-C would stop it (SIGTERM: the history stays consistent, the run
resumable), and killed if it does not stop within a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

import orjson

from ..runs import RunStatus

#: Seconds a run stopped at its time limit gets to stop cleanly before it is killed.
GRACE: Final = 10.0
INTERRUPTED: Final = 130


@dataclass(frozen=True, slots=True)
class Resumed:
    """How one run's process ended: its exit code and what it said."""

    run_id: str
    exit_code: int
    #: ``resume --json``'s object, or one made from the error the process printed.
    report: dict[str, Any]


def resume_each(
    run_ids: list[str], *, home: Path | None, time_limit: float, max_wait: float, parallel: int
) -> list[Resumed]:
    """Resume each run in a ``wfrun resume`` process, ``parallel`` at a time, in order."""
    runner = _Runner(home, time_limit, max_wait)
    previous = signal.signal(signal.SIGTERM, runner.stop_all)
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            try:
                return list(pool.map(runner.resume, run_ids))
            except KeyboardInterrupt:
                runner.stop_all(signal.SIGINT, None)  # they run in sessions of their own
                raise
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Runner:
    def __init__(self, home: Path | None, time_limit: float, max_wait: float) -> None:
        self._home = home
        self._time_limit = time_limit
        self._max_wait = max_wait
        self._children: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def resume(self, run_id: str) -> Resumed:
        # -P: nothing from the current folder shadows wfrun (a planted _wfrun_launcher.py).
        command = [sys.executable, "-P", "-m", "_wfrun_launcher", "resume", run_id, "--json"]
        command += ["--max-wait", str(self._max_wait)]
        if self._home is not None:
            command += ["--home", str(self._home)]
        # Files, not pipes: a process the run left behind may hold them open for ever.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            with self._lock:
                if self._stopping:
                    return _interrupted(run_id, "not started: wfrun resume --all was stopped")
                child = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: stopped whole
                )
                self._children.add(child)
            try:
                child.wait(timeout=self._time_limit)
                over_time = False
            except subprocess.TimeoutExpired:
                over_time = True
                _stop(child)
            finally:
                with self._lock:
                    self._children.discard(child)
            stdout, stderr = _read(out), _read(err)
        if over_time:
            return _interrupted(
                run_id,
                f"stopped at the time limit of {self._time_limit:g}s; `wfrun resume {run_id}` "
                "continues it",
            )
        report = _report(stdout)
        if report is None:
            error = _error_in(stderr) or "the process printed no report"
            code = child.returncode if child.returncode > 0 else 1
            return Resumed(run_id, code, {"run_id": run_id, "status": "ERROR", "error": error})
        return Resumed(run_id, child.returncode, report)

    def stop_all(self, signum: int, frame: FrameType | None) -> None:
        """Stopping ``resume --all`` stops every run it started, as Ctrl-C would."""
        with self._lock:
            self._stopping = True
            for child in self._children:
                _signal_group(child, signal.SIGTERM)


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


def _stop(child: subprocess.Popen[bytes]) -> None:
    _signal_group(child, signal.SIGTERM)
    try:
        child.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(child, signal.SIGKILL)
        child.wait()


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")


def _report(stdout: str) -> dict[str, Any] | None:
    """``resume --json``'s object: the last line (what the run's code printed comes before)."""
    lines = stdout.strip().splitlines()
    try:
        report = orjson.loads(lines[-1]) if lines else None
    except orjson.JSONDecodeError:
        return None
    return report if isinstance(report, dict) and "status" in report else None


def _error_in(stderr: str) -> str:
    """The error ``wfrun`` said last (what the run's code logged may come before it)."""
    said = [
        chunk.strip()
        for chunk in ("\n" + stderr).split("\nwfrun: ")[1:]
        if " (imported from " not in chunk.splitlines()[0]
    ]
    return said[-1] if said else stderr.strip()


def _interrupted(run_id: str, why: str) -> Resumed:
    return Resumed(
        run_id, INTERRUPTED, {"run_id": run_id, "status": RunStatus.INTERRUPTED, "reason": why}
    )


def default_parallel() -> int:
    """As many runs at once as there are cores: a run is mostly waiting, but starts cost CPU."""
    return os.cpu_count() or 1
