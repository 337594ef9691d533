"""Shared fixtures: every test gets its own wfrun home, working directory and attempt log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from wfrun.cli import app

TESTS = Path(__file__).parent
FLOWS = TESTS / "flows"
ROOT = TESTS.parent


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point WFRUN_HOME and the attempt log at tmp_path, and run from there."""
    home = tmp_path / "home"
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("WFRUN_HOME", str(home))
    monkeypatch.setenv("WFRUN_TEST_LOG", str(log))
    monkeypatch.delenv("WFRUN_MAX_PAYLOAD", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def home(isolated: Path) -> Path:
    return isolated / "home"


@pytest.fixture
def log(isolated: Path) -> Path:
    return isolated / "log"


def attempts(log: Path, name: str) -> int:
    """How many times the activity logged as ``name`` actually ran."""
    path = log / f"{name}.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def wf(name: str) -> str:
    """The path of a test workflow module, as a TARGET prefix."""
    return str(FLOWS / f"{name}.py")


def cli(*args: str) -> Result:
    """Run the command line in-process (typer's CliRunner)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def run_wfrun(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m wfrun`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "wfrun", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def list_runs_json() -> list[dict]:
    """``wfrun list --json`` from a real process; a failure shows what the process said."""
    result = run_wfrun("list", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stdout, result.stderr
    return orjson.loads(result.stdout)


def spawn_wfrun(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wfrun", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def cut_history(run_id: str, keep: int, tail: bytes = b"") -> Path:
    """Keep a run's first ``keep`` events (what a crash right after them leaves), plus ``tail``."""
    path = Path(os.environ["WFRUN_HOME"]) / "runs" / f"{run_id}.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:keep]) + tail)
    return path


def backdate(run_id: str, seconds: float) -> Path:
    """Move every time a run recorded ``seconds`` into the past: as if it had been down that long.

    How a test gets past a deadline or a timer's due time without waiting for it.
    """
    path = Path(os.environ["WFRUN_HOME"]) / "runs" / f"{run_id}.jsonl"
    shifted = []
    for line in path.read_bytes().splitlines():
        event = orjson.loads(line)
        for field in ("ts", "due"):
            if isinstance(event.get(field), str):
                moment = datetime.fromisoformat(event[field]) - timedelta(seconds=seconds)
                event[field] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        shifted.append(orjson.dumps(event) + b"\n")
    path.write_bytes(b"".join(shifted))
    return path


def write_module(path: Path, source: str) -> Path:
    """Write a workflow module, and forget any earlier import of it (new code, new process)."""
    import textwrap

    path.write_text(textwrap.dedent(source))
    resolved = str(path.resolve())
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == resolved:
            del sys.modules[name]
    return path


# -- watching a live run from outside -----------------------------------------------------------


def history(home: Path, run_id: str) -> list[dict]:
    path = home / "runs" / f"{run_id}.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.endswith(b"}")]


def wait_for(home: Path, run_id: str, predicate, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = history(home, run_id)
        if predicate(events):
            return events
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting on {run_id}: {history(home, run_id)}")


def completed(events: list[dict]) -> int:
    return sum(e["type"] == "ActivityCompleted" for e in events)


def heartbeat_reached(at_least: int):
    """Predicate: a heartbeat with details[0] >= at_least has been recorded."""

    def check(events: list[dict]) -> bool:
        return last_heartbeat(events) >= at_least

    return check


def last_heartbeat(events: list[dict]) -> int:
    return max((e["details"][0] for e in events if e["type"] == "ActivityHeartbeat"), default=-1)


def kill_when(
    process: subprocess.Popen[str], home: Path, run_id: str, predicate, signum: int = signal.SIGKILL
) -> list[dict]:
    try:
        events = wait_for(home, run_id, predicate)
    except AssertionError:
        process.kill()
        raise
    os.kill(process.pid, signum)
    process.wait(timeout=30)
    return events
