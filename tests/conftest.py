"""Shared fixtures: every test gets its own wfrun home, working directory and attempt log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def write_module(path: Path, source: str) -> Path:
    """Write a workflow module, and forget any earlier import of it (new code, new process)."""
    import textwrap

    path.write_text(textwrap.dedent(source))
    resolved = str(path.resolve())
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == resolved:
            del sys.modules[name]
    return path
