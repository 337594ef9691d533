"""``wfrun resume --all``: every run that can go on, each in a process of its own.

A process of its own per run, because modules are cached by name: two projects that both
have a ``flows.py`` must each run their own code. Each process has a time limit; past it, it
is stopped as Ctrl-C would stop it (SIGTERM: the history stays consistent, the run
resumable), and killed if it does not stop within a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

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
            return list(pool.map(runner.resume, run_ids))
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Runner:
    def __init__(self, home: Path | None, time_limit: float, max_wait: float) -> None:
        self._home = home
        self._time_limit = time_limit
        self._max_wait = max_wait
        self._children: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def resume(self, run_id: str) -> Resumed:
        command = [sys.executable, "-m", "_wfrun_launcher", "resume", run_id, "--json"]
        command += ["--max-wait", str(self._max_wait)]
        if self._home is not None:
            command += ["--home", str(self._home)]
        with self._lock:
            if self._stopping:
                return _interrupted(run_id, "not started: wfrun resume --all was stopped")
            child = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            self._children.add(child)
        try:
            stdout, stderr = child.communicate(timeout=self._time_limit)
            over_time = False
        except subprocess.TimeoutExpired:
            over_time = True
            stdout, stderr = _stop(child)
        finally:
            with self._lock:
                self._children.discard(child)
        if over_time:
            return _interrupted(
                run_id,
                f"stopped at the time limit of {self._time_limit:g}s; `wfrun resume {run_id}` "
                "continues it",
                code=child.returncode if child.returncode == INTERRUPTED else INTERRUPTED,
            )
        return Resumed(run_id, child.returncode, _report(run_id, stdout, stderr))

    def stop_all(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM to ``resume --all`` reaches every run it started (Ctrl-C does by itself)."""
        with self._lock:
            self._stopping = True
            for child in self._children:
                child.send_signal(signal.SIGTERM)


def _stop(child: subprocess.Popen[str]) -> tuple[str, str]:
    child.send_signal(signal.SIGTERM)
    try:
        return child.communicate(timeout=GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.communicate()


def _report(run_id: str, stdout: str, stderr: str) -> dict[str, Any]:
    try:
        report = orjson.loads(stdout)
    except orjson.JSONDecodeError:
        report = None
    if isinstance(report, dict):
        return report
    # The error is what follows "wfrun:" (the run's own log lines may come before it).
    start = stderr.find("wfrun: ")
    message = stderr[start + len("wfrun: ") :].strip() if start >= 0 else stderr.strip()
    return {"run_id": run_id, "status": "ERROR", "error": message or "the process said nothing"}


def _interrupted(run_id: str, why: str, code: int = INTERRUPTED) -> Resumed:
    return Resumed(run_id, code, {"run_id": run_id, "status": RunStatus.INTERRUPTED, "reason": why})


def default_parallel() -> int:
    """As many runs at once as there are cores: a run is mostly waiting, but starts cost CPU."""
    return os.cpu_count() or 1
