"""What a run costs beside its steps (creating it, setting it up, ending it): done once per
crowd or per process where once serves, and never paid by a run that does not need it."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wfrun as workflows
from wfrun import entropy
from wfrun.local.store import RunStore

from conftest import where_syncs_run
from flows.steps import StepsWorkflow


def test_runs_started_together_that_never_wait_are_created_as_a_crowd(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow with no step never waits: without a turn of the loop before its creation,
    each run of a gather was created, run and ended alone, its fsyncs inline, one after the
    other."""
    on_the_loop = where_syncs_run(monkeypatch)

    async def together() -> list[list[int]]:
        runs = (
            workflows.execute_workflow(StepsWorkflow, {"count": 0}, execution_id=f"z{i}", home=home)
            for i in range(4)
        )
        return await asyncio.gather(*runs)

    assert asyncio.run(together()) == [[]] * 4
    assert all(RunStore(home).read(f"z{i}").terminal is not None for i in range(4))
    # Created among each other: at most the first run's syncs stay on the loop thread.
    assert on_the_loop.count(False) >= 3 * 2


def test_random_bits_are_handed_out_once_and_anew_in_a_forked_child() -> None:
    first = entropy.token_bytes(16)
    assert entropy.token_bytes(16) != first
    assert len(entropy.token_hex(4)) == 8
    assert 0 <= entropy.randbits(63) < 2**63
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(writer, entropy.token_bytes(16))
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    child = os.read(reader, 16)
    os.close(reader)
    assert child != entropy.token_bytes(16)  # the parent's next bytes are not the child's


def test_a_run_seeds_its_random_generator_only_when_its_workflow_asks_for_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    from wfrun.local import instance

    seeded: list[object] = []

    class Counted(random.Random):
        def seed(self, *args: object, **kwargs: object) -> None:
            seeded.append(args)
            super().seed(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(instance._random, "Random", Counted)
    run = workflows.execute_workflow
    assert asyncio.run(run(StepsWorkflow, {"count": 1}, execution_id="plain", home=home)) == [10]
    assert seeded == []


def test_a_workflow_started_by_its_file_has_its_file_resolved_once_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wfrun import loader

    resolved: list[Path] = []
    resolve = Path.resolve

    def counted(path: Path, strict: bool = False) -> Path:
        resolved.append(path)
        return resolve(path, strict=strict)

    monkeypatch.setattr(loader, "_resolved_files", {})
    monkeypatch.setattr(Path, "resolve", counted)
    targets = {loader.target_of(StepsWorkflow, by_file=True) for _ in range(3)}
    assert len(targets) == 1
    assert targets.pop().endswith("steps.py:StepsWorkflow")
    assert len(resolved) == 1


def test_a_run_created_in_a_crowd_looks_its_runs_folder_up_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its trust check (lstat) also says which lock file is the home's: no second stat."""
    runs = str(home / "runs")
    looked: list[str] = []

    def counted(call: Callable[..., os.stat_result]) -> Callable[..., os.stat_result]:
        def counting(path: object, *args: object, **kwargs: object) -> os.stat_result:
            if str(path) == runs:
                looked.append(call.__name__)
            return call(path, *args, **kwargs)

        return counting

    async def together() -> list[list[int]]:
        created = (
            workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id=f"c{i}", home=home)
            for i in range(12)
        )
        return await asyncio.gather(*created)

    RunStore(home).ensure_folder(home / "runs")
    monkeypatch.setattr(os, "stat", counted(os.stat))
    monkeypatch.setattr(os, "lstat", counted(os.lstat))
    assert asyncio.run(together()) == [[10]] * 12
    assert len(looked) <= 12 + 2  # one per run, and the lock file's own check when opened


def test_runs_created_in_one_turn_of_the_loop_open_their_files_in_a_few_pool_calls(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfrun.local import store, syncs

    submitted: list[object] = []
    submit = syncs.submit
    linked_in: list[str] = []
    link_one = store._link_one

    def counted(function: Callable[[], object]) -> object:
        submitted.append(getattr(function, "func", function))
        return submit(function)

    def linked(temporary: Path, final: Path) -> None:
        linked_in.append(threading.current_thread().name)
        link_one(temporary, final)

    monkeypatch.setattr(syncs, "submit", counted)
    monkeypatch.setattr(store, "_link_one", linked)

    async def together() -> list[list[int]]:
        created = (
            workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id=f"o{i}", home=home)
            for i in range(syncs.CREATE_SLOTS)
        )
        return await asyncio.gather(*created)

    assert asyncio.run(together()) == [[10]] * syncs.CREATE_SLOTS
    # All of them in the same turn: a few threads' worth of calls, not a call (a hand-off to
    # a thread and a wake-up of the loop) each.
    assert 1 <= submitted.count(store._open_new) <= 4
    # Each file is linked into place by the thread that synced it: no pool call of its own.
    assert submitted == [store._open_new] * len(submitted)
    assert len(linked_in) == syncs.CREATE_SLOTS
    assert threading.main_thread().name not in linked_in
    assert all(
        RunStore(home).read(f"o{i}").started.run_id == f"o{i}" for i in range(syncs.CREATE_SLOTS)
    )


def test_a_sync_is_reported_before_the_trims_of_the_runs_ending_in_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's last sync trims its file in the sync thread (its ``then``): the other runs of
    the batch, whose steps wait for their syncs, are told before that."""
    from wfrun.local import syncs

    monkeypatch.setattr(syncs, "SYNC_THREADS", 1)  # the batch's syncs in one thread, in turn
    monkeypatch.setattr(syncs, "AIO_FROM", 100)
    release = threading.Event()

    def trim() -> None:
        release.wait(60)  # a bound only a hang reaches

    fds = [os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT, 0o600) for i in range(2)]

    async def main() -> None:
        ending, _ = syncs.submit_batched(fds[0], data_only=True, then=trim)
        going_on, _ = syncs.submit_batched(fds[1], data_only=True)
        await asyncio.wait_for(going_on, 30)  # a bound only a hang reaches
        assert not ending.done()  # told only once its trim is done
        release.set()
        await asyncio.wait_for(ending, 30)

    try:
        asyncio.run(main())
    finally:
        release.set()
        for fd in fds:
            os.close(fd)


def _crowd_where_one_fails(home: Path) -> list[object]:
    """Four runs started together (the first may be created alone; the rest in a crowd)."""

    async def together() -> list[object]:
        created = (
            workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id=f"c{i}", home=home)
            for i in range(4)
        )
        outcomes: list[object] = await asyncio.gather(*created, return_exceptions=True)
        return outcomes

    return asyncio.run(together())


def test_a_crowd_where_one_run_s_open_fails_fails_that_run_only(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfrun.local import store

    open_one = store._open_one

    def refusing(temporary: Path, lock: Any, run_id: str) -> int:
        if run_id == "c2":
            lock.release(run_id)  # as _open_one does when its open fails
            raise store.io_error(
                PermissionError(errno.EACCES, "denied"), temporary.parent, "cannot create"
            )
        return open_one(temporary, lock, run_id)

    monkeypatch.setattr(store, "_open_one", refusing)
    outcomes = _crowd_where_one_fails(home)
    assert [type(o).__name__ for o in outcomes][:2] == ["list", "list"]
    assert outcomes[3] == [10]
    assert isinstance(outcomes[2], Exception)
    monkeypatch.setattr(store, "_open_one", open_one)
    # Nothing of it left behind: it can be started again under its id.
    assert asyncio.run(
        workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id="c2", home=home)
    ) == [10]


def test_a_crowd_where_one_run_s_link_fails_fails_that_run_only(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfrun.local import store

    link_one = store._link_one

    def refusing(temporary: Path, final: Path) -> None:
        if final.name.startswith("c1."):
            temporary.unlink()
            raise OSError(errno.EMFILE, "too many open files")
        link_one(temporary, final)

    monkeypatch.setattr(store, "_link_one", refusing)
    outcomes = _crowd_where_one_fails(home)
    assert isinstance(outcomes[1], BaseException)
    assert [outcomes[i] for i in (0, 2, 3)] == [[10]] * 3
    monkeypatch.setattr(store, "_link_one", link_one)
    assert asyncio.run(
        workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id="c1", home=home)
    ) == [10]


def test_a_crowd_where_one_run_s_first_sync_fails_fails_that_run_only_and_links_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread that syncs a new file links it only once it is durable: a failed sync
    fails its run with the sync's error (as a failed sync of any step does), nothing is put
    in place, and its temporary name goes."""
    from wfrun.errors import HistoryIOError
    from wfrun.local import syncs

    monkeypatch.setattr(syncs, "_aio_available", lambda: False)  # the plain calls, one per file
    fdatasync = os.fdatasync

    def failing(fd: int) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".c2."):
            raise OSError(errno.EIO, "I/O error")
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", failing)
    outcomes = _crowd_where_one_fails(home)
    assert isinstance(outcomes[2], HistoryIOError)
    assert "cannot sync the history" in str(outcomes[2])
    assert [outcomes[i] for i in (0, 1, 3)] == [[10]] * 3
    assert not (home / "runs" / "c2.jsonl").exists()
    assert not [name for name in os.listdir(home / "runs") if name.endswith(".tmp")]
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    assert asyncio.run(
        workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id="c2", home=home)
    ) == [10]


def test_a_run_s_idempotency_key_prefix_is_uuid5_of_its_id_and_seed() -> None:
    """Computed without uuid's object, the keys activities see stay what they were."""
    import random
    import uuid

    from wfrun.local.engine import _IDEMPOTENCY_NAMESPACE, key_prefix

    draw = random.Random(11)
    for _ in range(2000):
        run_id = "".join(draw.choices("azAZ09._-", k=draw.randint(1, 128)))
        seed = draw.getrandbits(63)
        expected = uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{run_id}/{seed}").hex
        assert key_prefix(run_id, seed) == expected


def test_stores_of_one_home_share_its_folder_paths_and_follow_wfrun_home_as_it_changes(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made per run made three paths per run; the environment is still read each
    time, so a changed WFRUN_HOME is the home of the next store."""
    first, second = isolated / "one", isolated / "two"
    assert RunStore(first).runs_dir is RunStore(str(first)).runs_dir
    assert RunStore(first).inbox_dir == first / "inbox"
    monkeypatch.setenv("WFRUN_HOME", str(first))
    assert RunStore().runs_dir is RunStore(first).runs_dir
    monkeypatch.setenv("WFRUN_HOME", str(second))
    assert RunStore().runs_dir == second / "runs"
    monkeypatch.delenv("WFRUN_HOME")
    assert RunStore().home == Path(".wfrun")  # relative, as ever: resolved where it is used


def test_a_home_s_lock_file_is_known_by_its_store_s_own_runs_folder_path(home: Path) -> None:
    """A run's lock is found by the store's runs folder path object itself (one per home), so
    that finding it again asks no comparison of paths."""
    store = RunStore(home)
    store._ensure_dirs()
    lock = store._lock("first")
    try:
        assert lock.folder is store.runs_dir
    finally:
        lock.release("first")


def test_a_run_sent_no_message_makes_no_path_for_its_inbox(home: Path) -> None:
    from wfrun.local.inbox import Inbox

    inbox = Inbox(RunStore(home), "quiet")
    assert inbox.read() == ([], 0)
    assert "path" not in vars(inbox)  # made only where the inbox folder is there
    inbox.post("signal", "go", b"{}", "2026-01-01T00:00:00Z")
    assert [m.name for m in inbox.read()[0]] == ["go"]
    assert inbox.path == home / "inbox" / "quiet.jsonl"


def test_a_workflow_s_input_model_is_looked_for_once_however_many_runs_it_has(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfrun import definitions

    @workflows.workflow.define(name="looked_up_once")
    class Once:
        @workflows.workflow.entrypoint
        async def run(self, count: int) -> int:
            return count

    looked: list[object] = []
    is_model = definitions._is_model_or_dataclass

    def counted(annotation: object) -> bool:
        looked.append(annotation)
        return is_model(annotation)

    monkeypatch.setattr(definitions, "_is_model_or_dataclass", counted)
    for i in range(3):
        run = workflows.execute_workflow(Once, {"count": i}, execution_id=f"o{i}", home=home)
        assert asyncio.run(run) == i
    assert looked == [int]


def test_a_run_cancelled_while_waiting_for_the_runs_folder_s_fsync_leaves_it_to_the_others(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsync a run waits for is another's: cancelling the waiter cancels only the wait,
    and the run that started it, and those that wait with it, see it through."""
    from wfrun.local import store

    folder = home / "runs"
    started = asyncio.Event()
    finish = asyncio.Event()

    async def slow_fsync(self: store.LoopGroupSync) -> None:
        started.set()
        await finish.wait()

    monkeypatch.setattr(store.LoopGroupSync, "_fsync", slow_fsync)

    async def three_runs() -> list[object]:
        group = store._loop_folder_syncs(folder)
        starter = asyncio.ensure_future(group.sync())
        await started.wait()
        cancelled = asyncio.ensure_future(group.sync())
        waiting = asyncio.ensure_future(group.sync())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        finish.set()
        return await asyncio.gather(starter, cancelled, waiting, return_exceptions=True)

    outcomes = asyncio.run(three_runs())
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], asyncio.CancelledError)
