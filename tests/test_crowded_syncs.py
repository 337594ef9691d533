"""Many runs in one process: a turn's fsyncs go to the kernel in one submission (Linux native
AIO), runs are created on the loop with their fsyncs batched, and the slots that admit runs
to a sync hand themselves on in order."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import wfrun as workflows
from wfrun.clock import SystemClock
from wfrun.errors import RunLockedError
from wfrun.local import aio, engine, store, syncs
from wfrun.local.store import LoopGroupSync, RunStore

from conftest import new_run_fields
from flows.steps import StepsWorkflow

needs_aio = pytest.mark.skipif(
    not aio.available() or aio.fsync_all([]) is None, reason="no Linux native AIO here"
)


def together(home: Path, count: int, steps: int = 3) -> list[list[int]]:
    async def main() -> list[list[int]]:
        return await asyncio.gather(
            *(
                workflows.execute_workflow(
                    StepsWorkflow, {"count": steps}, execution_id=f"r{i}", home=home
                )
                for i in range(count)
            )
        )

    return asyncio.run(main())


def names(fds: Sequence[int]) -> list[str]:
    return [os.readlink(f"/proc/self/fd/{fd}") for fd in fds]


# -- one submission for a turn's fsyncs ------------------------------------------------------


@needs_aio
def test_a_crowd_s_fsyncs_go_to_the_kernel_in_submissions(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[list[tuple[int, str]]] = []
    real = aio.fsync_all

    def watched(requests: Sequence[tuple[int, bool]]) -> list[int | None] | None:
        fds = [fd for fd, _ in requests]
        batches.append(list(zip([os.fstat(fd).st_ino for fd in fds], names(fds), strict=True)))
        return real(requests)

    monkeypatch.setattr(aio, "fsync_all", watched)
    # How many syncs fall in one turn depends on the threads' timing: from one on, every
    # turn's go in one submission, whatever the machine's load.
    monkeypatch.setattr(syncs, "AIO_FROM", 1)
    assert together(home, 12) == [[10, 20, 30]] * 12
    synced = [inode for batch in batches for inode, _ in batch]
    paths = [RunStore(home).path(f"r{i}") for i in range(12)]
    counts = [synced.count(path.stat().st_ino) for path in paths]
    assert min(counts) >= 1
    assert sum(counts) >= 12 * 5 // 2  # most of their five syncs each (creation, 3 steps, end)
    assert all(path.read_bytes().endswith(b"}\n") for path in paths)
    # The new files' first syncs too, under their temporary names (linked only once synced).
    assert any(name.endswith(".tmp") for batch in batches for _, name in batch)


@needs_aio
def test_fsync_all_syncs_each_file_and_leaves_one_it_cannot_sync_to_the_plain_call(
    tmp_path: Path,
) -> None:
    first = os.open(tmp_path / "a", os.O_RDWR | os.O_CREAT, 0o600)
    second = os.open(tmp_path / "b", os.O_RDWR | os.O_CREAT, 0o600)
    read, write = os.pipe()
    try:
        os.write(first, b"x\n")
        os.write(second, b"y\n")
        assert aio.fsync_all([(first, True), (read, True), (second, False)]) == [0, None, 0]
        assert aio.available()  # one file refused is that file's business
    finally:
        for fd in (first, second, read, write):
            os.close(fd)


@needs_aio
def test_a_file_the_kernel_refuses_fails_its_own_run_with_the_plain_call_s_error(
    tmp_path: Path,
) -> None:
    read, write = os.pipe()
    files = [
        os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT, 0o600) for i in range(syncs.AIO_FROM)
    ]

    async def main() -> list[BaseException | None]:
        waits = [syncs.submit_batched(fd, data_only=True)[0] for fd in [read, *files]]
        return await asyncio.gather(*waits, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        for fd in (read, write, *files):
            os.close(fd)
    assert isinstance(outcomes[0], OSError)  # a pipe cannot be synced: fdatasync says so
    assert outcomes[1:] == [None] * syncs.AIO_FROM


def test_without_native_aio_a_crowd_syncs_each_file_in_the_threads(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio, "fsync_all", lambda requests: None)  # as on a kernel without it
    plain: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (plain.append(fd), real(fd))[1])
    assert together(home, 8) == [[10, 20, 30]] * 8
    assert len(plain) >= 8 * 4  # each run's first event, three steps and its end


# -- runs created together -------------------------------------------------------------------


@needs_aio
def test_runs_created_together_share_fsyncs_of_their_folder(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder_syncs: list[int] = []
    real = aio.fsync_all

    def watched(requests: Sequence[tuple[int, bool]]) -> list[int | None] | None:
        folder_syncs.extend(
            fd
            for fd, name in zip(
                [fd for fd, _ in requests], names([r[0] for r in requests]), strict=True
            )
            if name == str(home / "runs")
        )
        return real(requests)

    monkeypatch.setattr(aio, "fsync_all", watched)
    plain: list[int] = []
    real_fsync = os.fsync
    runs = str(home / "runs")

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == runs:
            plain.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert together(home, 40, steps=1) == [[10]] * 40
    # Each run's name is durable (the folder was synced after its link), in far fewer
    # fsyncs of the folder than runs.
    assert 1 <= len(folder_syncs) + len(plain) < 40


def settled(home: Path, run_ids: Sequence[str]) -> bool:
    """Whether no creation of ``run_ids`` is still at work: no temporary file left, and none
    of them locked.

    Every run started is asked, not only those with a file: a creation takes its run's lock
    before a thread creates the temporary file, and lets it go only once that file is gone
    (or linked into place). A creation cancelled before a thread took its file's creation
    has no file yet, and creates it later, in a thread, once the process has one to spare.
    So a folder with no temporary file and no locked run *file* says nothing: asked too
    early, this check said so while a cancelled creation was still queued in the pool, and
    a temporary file appeared an instant later."""
    store = RunStore(home)
    names = os.listdir(home / "runs")
    return not any(name.endswith(".tmp") for name in names) and not any(
        store.is_locked(run_id) for run_id in run_ids
    )


def test_a_run_cancelled_while_it_is_created_leaves_no_temporary_file_nor_its_lock(
    home: Path,
) -> None:
    run_ids = [f"c{turns}-{i}" for turns in range(12) for i in range(6)]

    async def main() -> None:
        for turns in range(12):  # cancelled at a different point of its creation each time
            tasks = [
                asyncio.ensure_future(
                    workflows.execute_workflow(
                        StepsWorkflow, {"count": 1}, execution_id=f"c{turns}-{i}", home=home
                    )
                )
                for i in range(6)
            ]
            for _ in range(turns):
                await asyncio.sleep(0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    # A thread still at work finishes what it began, then lets go: once nothing is left, and
    # no run is held, no creation is left to leave anything (see `settled`).
    for _ in range(3000):  # a bound only a hang reaches
        if settled(home, run_ids):
            break
        time.sleep(0.01)
    assert settled(home, run_ids)
    created = RunStore(home)
    for name in os.listdir(home / "runs"):
        if name.endswith(".jsonl"):
            run_id = name.removesuffix(".jsonl")
            assert created.read(run_id).started.run_id == run_id  # whole, never half-created


def test_a_creation_cancelled_before_a_thread_made_its_file_holds_the_run_until_it_is_undone(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving the check above once missed: the runs are cancelled while their
    files' creation waits in the pool, and the event loop is gone before a thread takes it.
    The folder then holds no file of theirs at all, yet their creation is not over: each
    run stays locked until a thread has created its file and removed it again."""
    pool = HeldPool()
    monkeypatch.setattr(syncs, "_executor", lambda: pool)
    run_ids = ["a", "b"]
    runs = home / "runs"

    async def main() -> None:
        tasks = [
            asyncio.ensure_future(
                workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id=run_id)
            )
            for run_id in run_ids
        ]
        for _ in range(2000):  # until both are being created (a bound only a hang reaches)
            if all(RunStore(home).is_locked(run_id) for run_id in run_ids):
                break
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # the turn that hands the last of them to the pool
        assert pool.queued  # their files' creation, waiting for a thread
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert [name for name in os.listdir(runs) if not name.startswith(".locks")] == []
    assert not settled(home, run_ids)  # held: not a file to show for it yet
    pool.run_all()  # a thread creates the files, then undoes that for the cancelled runs
    assert settled(home, run_ids)
    assert [name for name in os.listdir(runs) if not name.startswith(".locks")] == []


# -- the folder's group fsync on the loop ----------------------------------------------------


class ControlledSyncs:
    """`syncs.submit_batched` whose fsyncs end when the test says, counted."""

    def __init__(self) -> None:
        self.started: list[asyncio.Future[None]] = []

    def __call__(self, fd: int, *, data_only: bool, then: object = None) -> object:
        from concurrent.futures import Future

        awaited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done: Future[None] = Future()
        awaited.add_done_callback(lambda _: done.set_result(None))
        self.started.append(awaited)
        return awaited, done


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_runs_arriving_during_a_folder_fsync_share_the_next_one_rather_than_that_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    controlled = ControlledSyncs()
    monkeypatch.setattr(syncs, "submit_batched", controlled)

    async def main() -> None:
        group = LoopGroupSync(tmp_path)
        first = asyncio.ensure_future(group.sync())
        await settle()
        assert len(controlled.started) == 1
        # These changed the folder after the running fsync began: it cannot cover them.
        later = [asyncio.ensure_future(group.sync()) for _ in range(5)]
        await settle()
        assert len(controlled.started) == 1
        controlled.started[0].set_result(None)
        await settle()
        assert first.done()
        assert not any(task.done() for task in later)
        assert len(controlled.started) == 2  # one fsync for the five
        controlled.started[1].set_result(None)
        await asyncio.gather(first, *later)
        assert len(controlled.started) == 2

    asyncio.run(main())


def test_a_failed_folder_fsync_fails_its_run_and_the_others_try_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    controlled = ControlledSyncs()
    monkeypatch.setattr(syncs, "submit_batched", controlled)

    async def main() -> None:
        group = LoopGroupSync(tmp_path)
        first = asyncio.ensure_future(group.sync())
        await settle()
        other = asyncio.ensure_future(group.sync())
        await settle()
        controlled.started[0].set_exception(OSError(5, "I/O error"))
        await settle()
        with pytest.raises(workflows.HistoryIOError, match="cannot sync"):
            await first
        assert len(controlled.started) == 2
        assert not other.done()
        controlled.started[1].set_result(None)
        await other

    asyncio.run(main())


# -- slots -----------------------------------------------------------------------------------


def test_a_released_slot_goes_to_the_first_run_still_waiting_for_one() -> None:
    async def main() -> list[str]:
        slots = syncs.Slots(1)
        order: list[str] = []

        async def hold(name: str) -> None:
            async with slots:
                order.append(name)
                await asyncio.sleep(0)

        holder = asyncio.ensure_future(hold("first"))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(hold(name)) for name in ("a", "b", "c")]
        await asyncio.sleep(0)
        waiting[1].cancel()  # gives up its place
        await asyncio.gather(holder, *waiting, return_exceptions=True)
        return order

    assert asyncio.run(main()) == ["first", "a", "c"]


def test_a_run_cancelled_as_it_is_handed_a_slot_passes_the_slot_on() -> None:
    async def main() -> bool:
        slots = syncs.Slots(1)
        await slots.__aenter__()
        waiter = asyncio.ensure_future(slots.__aenter__())
        second = asyncio.ensure_future(slots.__aenter__())
        await asyncio.sleep(0)
        await slots.__aexit__()  # handed to the waiter, which is cancelled before it runs
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.wait_for(second, 5)  # the slot went on, not lost
        return True

    assert asyncio.run(main())


def test_open_files_stay_within_the_slots_while_many_runs_are_created(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    most = [0]
    opened, closed = store._OpenFiles.opened, store._OpenFiles.closed

    def counting(self: store._OpenFiles) -> None:
        opened(self)
        most[0] = max(most[0], self.count)

    monkeypatch.setattr(store._OpenFiles, "opened", counting)
    monkeypatch.setattr(store._OpenFiles, "closed", closed)
    monkeypatch.setattr(store, "keep_open", lambda: 8)
    assert together(home, 120, steps=1) == [[10]] * 120
    assert most[0] <= 8 + syncs.SYNC_SLOTS + syncs.CREATE_SLOTS


# -- what a loop's runs share, and a thread's part of a sync ---------------------------------


def test_each_event_loop_has_its_own_slots_and_keeps_them() -> None:
    async def twice() -> tuple[syncs.Slots, syncs.Slots]:
        return syncs.slot(), syncs.slot()

    first, again = asyncio.run(twice())
    second, _ = asyncio.run(twice())
    assert first is again
    assert second is not first  # a new loop: not the last one's, remembered


def test_a_thread_s_part_calls_back_whoever_waits_once_it_is_done() -> None:
    done: syncs.ThreadDone[int] = syncs.ThreadDone()
    seen: list[object] = []
    done.add_done_callback(seen.append)
    assert not done.done()
    assert seen == []
    done.set_result(3)
    assert done.done()
    assert seen == [done]
    assert done.result() == 3


def test_a_thread_s_part_already_done_calls_back_at_once() -> None:
    done: syncs.ThreadDone[None] = syncs.ThreadDone()
    done.set_exception(OSError(5, "EIO"))
    seen: list[object] = []
    done.add_done_callback(seen.append)
    assert seen == [done]
    assert isinstance(done.exception(), OSError)
    assert not done.cancelled()
    with pytest.raises(OSError, match="EIO"):
        done.result()


def test_a_thread_s_part_calls_back_the_others_when_one_callback_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As a `concurrent.futures.Future` does: a callback's failure is logged, never raised
    into the thread that settles (which has other runs' outcomes to hand back)."""
    done: syncs.ThreadDone[None] = syncs.ThreadDone()
    seen: list[object] = []

    def broken(_: object) -> None:
        raise RuntimeError("a run's release failed")

    done.add_done_callback(broken)
    done.add_done_callback(seen.append)
    done.set_result(None)
    assert seen == [done]
    done.add_done_callback(broken)  # already done: called at once, and not raised either
    logged = [str(record.exc_info[1]) for record in caplog.records if record.exc_info]
    assert logged == ["a run's release failed"] * 2  # logged, as a Future's are


def test_a_failing_callback_of_one_sync_leaves_the_other_runs_of_its_batch_settled(
    tmp_path: Path,
) -> None:
    """A sync thread settles a batch: one run's callback that raises (its `close` releasing
    the run in the thread) must not keep the batch's other runs waiting forever."""
    loop = asyncio.new_event_loop()
    fds = [os.open(tmp_path / f"f{i}", os.O_CREAT | os.O_RDWR, 0o600) for i in range(3)]
    try:
        items: list[Any] = [
            (syncs._Sync(fd, True, None), loop.create_future(), syncs.ThreadDone()) for fd in fds
        ]

        def broken(_: object) -> None:
            raise RuntimeError("a run's release failed")

        items[0][2].add_done_callback(broken)
        syncs._finish(loop, items, [None] * len(items))  # a sync thread's work, run here
        loop.run_until_complete(asyncio.sleep(0))  # the loop's wake-up: outcomes settled
        assert [awaited.done() for _, awaited, _ in items] == [True] * len(items)
    finally:
        loop.close()
        for fd in fds:
            os.close(fd)


def test_a_forked_child_settles_a_thread_s_part_though_a_thread_was_settling_one_at_the_fork() -> (
    None
):
    """Every `ThreadDone` shares one lock: a fork while a sync thread held it must not leave
    the child's copy held forever (the child's first crowded sync would never return)."""
    holding, let_go = threading.Event(), threading.Event()

    def settling() -> None:  # a sync thread inside `ThreadDone._finish`
        with syncs._done_mutex:
            holding.set()
            let_go.wait()

    thread = threading.Thread(target=settling)
    thread.start()
    holding.wait()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:  # the lock a child's ThreadDone takes: blocking on a held one would hang here
            free = syncs._done_mutex.acquire(blocking=False)
            code = 0 if free else 3
        except BaseException:
            code = 4
        os._exit(code)
    let_go.set()
    thread.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_run_s_lock_is_held_until_a_sync_thread_is_done_with_its_file(home: Path) -> None:
    """`close` while a thread still syncs the file: the lock goes only once the thread is done."""
    writer, _ = RunStore(home).create(new_run_fields("held"), SystemClock())
    busy: syncs.ThreadDone[None] = syncs.ThreadDone()
    writer._syncing.add(busy)
    writer.close()
    with pytest.raises(RunLockedError):
        RunStore(home).open_for_append("held", SystemClock())
    busy.set_result(None)
    other, _ = RunStore(home).open_for_append("held", SystemClock())
    other.close()


@workflows.activity
async def at_once(i: int) -> int:
    """Done as it starts: its report comes with no wait."""
    return i


@workflows.workflow.define(name="crowd_turns")
class AtOnceSteps:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        return sum([await at_once(i) for i in range(steps)])


def test_a_crowded_run_hands_the_loop_one_turn_a_step_however_long_its_sync_takes(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crowded run's wait for a step's sync is a turn for the other runs: the steps taken
    after it begin a turn of their own. The engine's clock moves only when a sync lands, by
    a second (a slow disk, or a crowd that takes long to go round): a run that counted its
    turn from before that wait would hand the loop a second turn at every step."""
    now = [0.0]
    monkeypatch.setattr(engine, "monotonic", lambda: now[0])
    landed = syncs._settle

    def slowly(outcomes: Any) -> None:  # on the loop: never between two reads of the clock
        now[0] += 1.0
        landed(outcomes)

    monkeypatch.setattr(syncs, "_settle", slowly)
    extra_turns = [0]
    sleep = asyncio.sleep

    async def counted(delay: float, result: Any = None) -> Any:
        if delay == 0 and sys._getframe(1).f_code.co_name == "_live":
            extra_turns[0] += 1
        return await sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", counted)

    async def main() -> list[int]:
        return await asyncio.gather(
            *(
                workflows.execute_workflow(
                    AtOnceSteps, {"steps": 6}, execution_id=f"t{i}", home=home
                )
                for i in range(3)
            )
        )

    assert asyncio.run(main()) == [15] * 3
    assert extra_turns == [0]


def test_a_crowded_run_whose_file_stays_open_syncs_without_waiting_for_a_slot(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots bound the descriptors opened for a sync; a file kept open between writes (within
    `store.keep_open`) needs none more, so its run does not queue for one."""
    monkeypatch.setattr(syncs, "SYNC_SLOTS", 1)
    waits = [0]
    wait = syncs.Slots.wait

    async def counted(self: syncs.Slots) -> None:
        waits[0] += 1
        await wait(self)

    monkeypatch.setattr(syncs.Slots, "wait", counted)
    assert together(home, 6, steps=3) == [[10, 20, 30]] * 6
    assert waits == [0]


# -- kill -9 with a crowd live ---------------------------------------------------------------


@pytest.mark.slow
def test_a_kill_with_a_crowd_live_loses_no_step_any_run_went_past(
    isolated: Path, log: Path, home: Path
) -> None:
    """Thirty runs in one process, each held in its third step (so each went past two steps,
    synced in a crowd): after a kill -9, resuming them runs no completed step again."""
    import subprocess
    import sys

    from conftest import FLOWS, attempts, hold, kill_after_marker, run_wfrun

    count = 30
    process = subprocess.Popen(
        [sys.executable, str(FLOWS / "crowd.py"), str(count), "4", "k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **hold("step3"), "PYTHONPATH": str(FLOWS.parent)},
    )
    kill_after_marker(process, log, "step3", count=count)
    resumed = run_wfrun("resume", "--all", timeout=300, env={"PYTHONPATH": str(FLOWS.parent)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert attempts(log, "step1") == count  # durable before each run went on: none again
    assert attempts(log, "step2") == count
    assert attempts(log, "step3") == 2 * count  # in flight at the kill: run again
    assert attempts(log, "step4") == count
    store = RunStore(home)
    for i in range(count):
        events = store.read(f"k{i}").events
        assert events[-1].type == "WorkflowCompleted"
        assert sum(e.type == "ActivityCompleted" for e in events) == 4


# -- the watchdog, with a crowd live ---------------------------------------------------------


def frames_on_the_loop(call: object) -> list[object]:
    """The frame that called ``call`` when the loop ran it as a callback, captured there."""
    import sys

    frames: list[object] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.call_soon(lambda: (frames.append(call()), done.set_result(None)))
        await done

    asyncio.run(main())
    return frames if frames else [sys._getframe()]


def test_the_loop_busy_between_callbacks_is_not_blamed_on_the_code_that_started_it() -> None:
    """With thousands of runs live, one turn of the loop can run past the threshold: caught in
    the loop's own dispatch, the watchdog must not name the user's ``asyncio.run`` line."""
    import sys

    from wfrun.local.watchdog import suspect

    [dispatch] = frames_on_the_loop(lambda: sys._getframe(2))  # asyncio's Handle._run
    assert "asyncio" in dispatch.f_code.co_filename  # type: ignore[attr-defined]
    assert suspect(dispatch) is None  # type: ignore[arg-type]


def test_code_the_standard_library_generates_is_looked_through_like_the_library() -> None:
    import dataclasses
    import sys

    from wfrun.local.watchdog import suspect

    captured: list[object] = []

    @dataclasses.dataclass
    class Probe:
        def __post_init__(self) -> None:
            captured.append(sys._getframe(1))  # the generated __init__, "<string>"

    async def main() -> None:
        asyncio.get_running_loop().call_soon(Probe)  # the loop calls the generated code itself
        await asyncio.sleep(0)

    asyncio.run(main())
    [generated] = captured
    assert generated.f_code.co_filename == "<string>"  # type: ignore[attr-defined]
    assert suspect(generated) is None  # type: ignore[arg-type]


class HeldPool:
    """The sync pool (`syncs._executor`), whose calls run only when the test says (as a busy
    pool would)."""

    def __init__(self) -> None:
        from concurrent.futures import Future

        self.queued: list[tuple[Any, Future[Any]]] = []
        self._future = Future

    def submit(self, function: Any, /, *args: Any) -> Any:
        future = self._future()
        self.queued.append((partial(function, *args), future))
        return future

    def run_all(self) -> None:
        while self.queued:
            function, future = self.queued.pop(0)
            if not future.set_running_or_notify_cancel():
                continue  # cancelled before a thread took it: it never runs
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)


def test_a_run_cancelled_while_its_first_sync_waits_for_a_thread_still_loses_its_temporary_name(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread that syncs a new run's file links it into place: cancelled before any
    thread took that work, the run's creation is still carried to its end, and its
    temporary name goes."""
    pool = HeldPool()
    monkeypatch.setattr(syncs, "_executor", lambda: pool)
    runs = home / "runs"

    def written_and_waiting() -> bool:  # the second run's file written, its sync in the pool
        names = [name for name in os.listdir(runs) if name.startswith(".b.")]
        return len(names) == 1 and os.path.getsize(runs / names[0]) > 0 and bool(pool.queued)

    async def main() -> None:
        first = asyncio.ensure_future(  # alone: created inline, and keeps the second crowded
            workflows.execute_workflow(StepsWorkflow, {"count": 1, "delay": 5}, execution_id="a")
        )
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(
            workflows.execute_workflow(StepsWorkflow, {"count": 1}, execution_id="b")
        )
        for _ in range(2000):  # until its sync waits in the pool (a bound only a hang reaches)
            if written_and_waiting():
                break
            pool.run_all()  # its file's creation, say
            await asyncio.sleep(0.005)
        assert written_and_waiting()
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        pool.run_all()
        first.cancel()
        for _ in range(50):  # what the first run's end still hands the pool
            pool.run_all()
            await asyncio.sleep(0.005)
        await asyncio.gather(first, return_exceptions=True)
        pool.run_all()

    asyncio.run(main())
    assert not [name for name in os.listdir(runs) if name.endswith(".tmp")]
    assert RunStore(home).read("b").started.run_id == "b"  # whole: linked once it was durable
