"""Many runs in one process: locks without a descriptor per run, fsyncs aside, own tasks only."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from wfrun.clock import SystemClock
from wfrun.errors import RunLockedError
from wfrun.local import locks
from wfrun.local.loop import WorkflowLoop
from wfrun.local.store import RunStore

from conftest import IdleLoopOwner, list_runs_json, wait_for_file, where_syncs_run

MANY = """
    import asyncio, os, resource, sys
    import wfrun as workflows

    @workflows.activity
    async def noop(i: int) -> int:
        return i

    @workflows.workflow.define(name="many")
    class Many:
        @workflows.workflow.entrypoint
        async def run(self, i: int) -> int:
            return await noop(i)

    async def main(n: int) -> None:
        runs = [workflows.execute_workflow(Many, {"i": i}, execution_id=f"m{i}") for i in range(n)]
        results = await asyncio.gather(*runs)
        assert results == list(range(n)), results

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    asyncio.run(main(int(sys.argv[1])))
    print("done")
"""

WAITERS = """
    import asyncio, os, sys
    from pathlib import Path
    import wfrun as workflows

    @workflows.workflow.define(name="sleeper")
    class Sleeper:
        @workflows.workflow.entrypoint
        async def run(self) -> None:
            await asyncio.sleep(3600)

    def waiting(run_id: str) -> bool:
        path = Path(os.environ["WFRUN_HOME"]) / "runs" / f"{run_id}.jsonl"
        return path.exists() and b'"TimerStarted"' in path.read_bytes()

    async def start(*run_ids: str) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(workflows.execute_workflow(Sleeper, execution_id=r))
                 for r in run_ids]
        while not all(waiting(r) for r in run_ids):
            await asyncio.sleep(0.01)
        return tasks

    async def main(marker: Path) -> None:
        first = await start("w0")
        one = len(os.listdir("/proc/self/fd"))
        more = await start(*(f"w{i}" for i in range(1, 21)))
        twenty_one = len(os.listdir("/proc/self/fd"))
        marker.write_text(f"{one} {twenty_one}")
        await asyncio.gather(*first, *more)

    asyncio.run(main(Path(sys.argv[1])))
"""


def script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


@pytest.mark.slow
def test_two_thousand_concurrent_runs_complete_within_1024_open_files(tmp_path: Path) -> None:
    many = script(tmp_path, "many", MANY)
    done = subprocess.run(
        [sys.executable, str(many), "2000"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "done"


@pytest.mark.slow
def test_a_waiting_run_holds_no_descriptor_yet_stays_locked_and_listed(
    tmp_path: Path, home: Path
) -> None:
    waiters = script(tmp_path, "waiters", WAITERS)
    marker = tmp_path / "counted"
    process = subprocess.Popen(
        [sys.executable, str(waiters), str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_file(marker, process)
        one, twenty_one = map(int, marker.read_text().split())
        assert twenty_one == one  # twenty more waiting runs, not one descriptor more
        store = RunStore()
        assert store.is_locked("w0")
        assert store.is_locked("w20")
        with pytest.raises(RunLockedError):
            store.open_for_append("w7", SystemClock())
        listed = {run["run_id"]: run["status"] for run in list_runs_json()}
        assert listed == {f"w{i}": "RUNNING" for i in range(21)}
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    assert not RunStore().is_locked("w0")  # the kernel let go of the dead process's locks


def _pending_tasks(loop: WorkflowLoop, count: int) -> list[asyncio.Task[None]]:
    async def forever() -> None:
        await loop.create_future()

    tasks = [loop.create_task(forever()) for _ in range(count)]
    loop.run_until_quiescent()
    return tasks


def test_abandoning_a_run_looks_at_its_own_tasks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    mine, other = WorkflowLoop(IdleLoopOwner(), 0.0), WorkflowLoop(IdleLoopOwner(), 0.0)
    my_tasks, other_tasks = _pending_tasks(mine, 3), _pending_tasks(other, 3)

    def every_task_of_the_process(loop: Any = None) -> set[asyncio.Task[Any]]:
        raise AssertionError("abandon scanned every task of every run (quadratic)")

    monkeypatch.setattr(asyncio, "all_tasks", every_task_of_the_process)
    mine.abandon()
    assert not any(task._log_destroy_pending for task in my_tasks)  # type: ignore[attr-defined]
    assert all(task._log_destroy_pending for task in other_tasks)  # type: ignore[attr-defined]
    other.abandon()


@contextlib.contextmanager
def _held(home: Path, run_id: str) -> Iterator[locks.LockFile]:
    store = RunStore(home)
    store.ensure_folder(store.runs_dir)
    lock = locks.lock_file(store.runs_dir, store.open_checked)
    lock.acquire(run_id, lambda: RunLockedError("held"))
    try:
        yield lock
    finally:
        lock.release(run_id)


def _held_elsewhere(path: Path, run_id: str) -> bool:
    """Whether some lock owner other than this open file holds ``run_id``'s byte."""
    fd = os.open(path, os.O_RDONLY)
    try:
        asked = locks._FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, locks.offset(run_id), 1, 0)
        answer = fcntl.fcntl(fd, locks._GET, asked)
    finally:
        os.close(fd)
    return bool(locks._FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)


@pytest.mark.skipif(not hasattr(fcntl, "F_OFD_GETLK"), reason="open file description locks")
def test_a_forked_child_neither_holds_nor_releases_its_parents_run_lock(home: Path) -> None:
    with _held(home, "r") as lock:
        pid = os.fork()
        if pid == 0:  # the child: what an activity that forks would do
            code = 1
            with contextlib.suppress(BaseException):
                locks.lock_file(lock.path.parent, RunStore(home).open_checked).release("r")
                code = 0 if _held_elsewhere(lock.path, "r") else 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _held_elsewhere(lock.path, "r")  # the child's exit took nothing with it


def test_a_run_id_is_locked_at_the_same_byte_in_every_process(tmp_path: Path) -> None:
    ask = "from wfrun.local.locks import offset; print(offset('some-run'))"
    other = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, check=True)
    assert int(other.stdout) == locks.offset("some-run") != locks.offset("some-run2")
    assert orjson.loads(other.stdout) < 2**62


def test_fsyncs_leave_the_loop_thread_only_while_runs_share_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    import wfrun as workflows

    from flows.steps import StepsWorkflow

    on_the_loop = where_syncs_run(monkeypatch)
    run = workflows.execute_workflow
    assert asyncio.run(run(StepsWorkflow, {"count": 2}, execution_id="alone")) == [10, 20]
    alone, on_the_loop[:] = list(on_the_loop), []

    async def together() -> list[list[int]]:
        runs = [run(StepsWorkflow, {"count": 2}, execution_id=f"t{i}") for i in range(3)]
        return await asyncio.gather(*runs)

    assert asyncio.run(together()) == [[10, 20]] * 3
    assert all(alone)  # a lone run syncs inline: no thread hop on the single-run path
    assert on_the_loop.count(False) >= 3 * 2  # each step of the three, at least, in a thread


def test_runs_sharing_a_process_keep_their_files_open_between_writes_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wfrun as workflows
    from wfrun.local import store

    from flows.steps import StepsWorkflow

    opened: list[int] = []
    counting = store._OpenFiles.opened
    monkeypatch.setattr(store._OpenFiles, "opened", lambda self: (opened.append(1), counting(self)))

    async def together(count: int) -> list[list[int]]:
        return await asyncio.gather(
            *(
                workflows.execute_workflow(
                    StepsWorkflow, {"count": 3}, execution_id=f"r{count}-{i}", home=tmp_path
                )
                for i in range(count)
            )
        )

    assert asyncio.run(together(4)) == [[10, 20, 30]] * 4
    assert len(opened) == 4  # each file opened once, when created: no reopen per write
    opened.clear()
    monkeypatch.setattr(store, "keep_open", lambda: 2)
    assert asyncio.run(together(8)) == [[10, 20, 30]] * 8
    assert len(opened) > 8  # past the budget, files are closed between writes
