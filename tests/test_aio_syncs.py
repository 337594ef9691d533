"""Syncs through Linux native AIO under faults: failures after submission, a sandbox, no ctypes,
fork, slots, and a kill -9 while a crowd of runs is being created."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wfrun as workflows
from wfrun.local import aio, syncs
from wfrun.local.store import RunStore

from conftest import FLOWS, attempts, run_wfrun
from flows.steps import StepsWorkflow

needs_aio = pytest.mark.skipif(
    not aio.available() or aio.fsync_all([]) is None, reason="no Linux native AIO here"
)


class KernelShim:
    """The real three system calls, with what the test says done to the events reaped."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.setup, self.getevents, self.submit = real.setup, real.getevents, real.submit
        self.destroy = real.destroy
        #: (context, request index (iocb.data)) -> fd, of the context's last submission: a
        #: context is its holder's alone from its submission until its events are reaped.
        self.fds: dict[tuple[int, int], int] = {}
        self.on_events: Any = None  # (events array, first index, count, shim) -> int | raise
        self.getevents_calls = 0

    def fail_first_reaped(self) -> list[int]:
        """From now on, the first fsync reaped reports EIO (as a failing disk would); the
        list returned holds one item once that happened."""
        failed: list[int] = []

        def on_events(args: Any, shim: KernelShim) -> int:
            got = int(shim.real.call(*args))
            if not failed:
                args[4]._obj[0].res = -errno.EIO
                failed.append(got)
            return got

        self.on_events = on_events
        return failed

    def call(self, *args: Any) -> int:
        number = args[0].value
        if number == self.submit:
            pointers = args[3]._obj[: args[2].value]  # from the first: none here is refused
            for p in pointers:  # a context's requests are addresses; a flight's, pointers
                iocb = aio._Iocb.from_address(p) if isinstance(p, int) else p.contents
                self.fds[(args[1].value, iocb.data)] = iocb.fildes
        if number == self.getevents and self.on_events is not None:
            self.getevents_calls += 1
            return int(self.on_events(args, self))
        return int(self.real.call(*args))


@pytest.fixture
def shim(monkeypatch: pytest.MonkeyPatch) -> KernelShim:
    real = aio._kernel or aio._Kernel()
    shim = KernelShim(real)
    monkeypatch.setattr(aio, "_kernel", shim)
    monkeypatch.setattr(aio, "_idle", [])  # contexts made through the shim
    monkeypatch.setattr(aio, "_unusable", None)
    return shim


def _files(tmp_path: Path, n: int) -> list[int]:
    fds = []
    for i in range(n):
        fd = os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT, 0o600)
        os.write(fd, b"x\n")
        fds.append(fd)
    return fds


# -- 1. a failed io_getevents after submission ----------------------------------------------


@needs_aio
def test_an_fsync_the_kernel_reported_failed_is_not_retried_plainly_and_called_durable(
    tmp_path: Path, shim: KernelShim
) -> None:
    """io_getevents hands back one event (request 0: EIO), then fails (EINVAL/EFAULT). The
    AIO fsync already consumed the file's writeback error (errseq, per open file): a plain
    fdatasync afterwards returns 0. So request 0 must be reported EIO, not None ("sync it the
    plain way"), or its run is told durable when its data is lost."""
    fds = _files(tmp_path, 4)
    victims: list[int] = []

    def on_events(args: Any, shim: KernelShim) -> int:
        if shim.getevents_calls == 1:  # reap exactly one (as a signal can make it), EIO
            got = shim.real.call(
                args[0], args[1], ctypes.c_long(1), ctypes.c_long(1), args[4], None
            )
            events = args[4]._obj
            events[0].res = -errno.EIO
            victims.append(events[0].data)
            return got
        raise OSError(errno.EINVAL, "Invalid argument")

    shim.on_events = on_events
    try:
        results = aio.fsync_all([(fd, True) for fd in fds])
    finally:
        for fd in fds:
            os.close(fd)
    assert results is not None
    # today: [None, None, None, None] (all synced again the plain way: 0)
    assert results[victims[0]] == errno.EIO, results
    assert None not in results, results  # outcome unknown: not "sync it again plainly"


@needs_aio
def test_a_crowd_run_whose_fsync_fails_after_submission_is_not_told_durable(
    tmp_path: Path, shim: KernelShim
) -> None:
    """Same, seen by a run: its awaited sync must raise, not resolve."""
    fds = _files(tmp_path, syncs.AIO_FROM)
    victims: list[int] = []

    def on_events(args: Any, shim: KernelShim) -> int:
        if shim.getevents_calls == 1:
            got = shim.real.call(
                args[0], args[1], ctypes.c_long(1), ctypes.c_long(1), args[4], None
            )
            args[4]._obj[0].res = -errno.EIO
            victims.append(args[4]._obj[0].data)
            return got
        raise OSError(errno.EINVAL, "Invalid argument")

    shim.on_events = on_events

    async def main() -> list[BaseException | None]:
        waits = [syncs.submit_batched(fd, data_only=True)[0] for fd in fds]
        return await asyncio.gather(*waits, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        for fd in fds:
            os.close(fd)
    assert isinstance(outcomes[victims[0]], OSError), outcomes  # today: all None (durable)


# -- 3. EIO on one run among a crowd ---------------------------------------------------------


@needs_aio
def test_eio_on_one_run_s_aio_fsync_fails_that_run_only_and_leaves_it_resumable(
    home: Path, shim: KernelShim, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every crowd's syncs through AIO, however few a turn asks for on a busy machine.
    monkeypatch.setattr(syncs, "AIO_FROM", 1)
    failed: list[int] = []
    seen: list[str] = []
    names: list[str] = []

    def on_events(args: Any, shim: KernelShim) -> int:
        got = shim.real.call(*args)
        events = args[4]._obj
        for event in events[:got]:
            fd = shim.fds.get((args[1].value, event.data))
            if fd is not None and not failed:
                inode = os.fstat(fd).st_ino
                for path in (home / "runs").glob("r*.jsonl"):  # linked: past its creation
                    if path.stat().st_ino == inode:
                        seen.append(str(path))
                        event.res = -errno.EIO
                        failed.append(fd)
                        names.append(str(path))
                        break
        return got

    shim.on_events = on_events

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(
                workflows.execute_workflow(
                    StepsWorkflow, {"count": 3}, execution_id=f"r{i}", home=home
                )
                for i in range(12)
            ),
            return_exceptions=True,
        )

    outcomes = asyncio.run(main())
    assert failed, ("the shim never saw a run's own file synced through AIO", seen)
    victim = int(Path(names[0]).stem[1:])
    assert isinstance(outcomes[victim], workflows.HistoryIOError), outcomes
    assert "cannot sync the history" in str(outcomes[victim])
    assert [o for i, o in enumerate(outcomes) if i != victim] == [[10, 20, 30]] * 11
    RunStore(home).read(f"r{victim}")  # not corrupt
    shim.on_events = None
    resumed = run_wfrun("resume", f"r{victim}", env={"PYTHONPATH": str(FLOWS.parent)})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert RunStore(home).read(f"r{victim}").events[-1].type == "WorkflowCompleted"


# -- 1. fork: a child never uses its parent's AIO contexts -----------------------------------


@needs_aio
def test_a_forked_child_syncs_through_its_own_context(tmp_path: Path) -> None:
    fds = _files(tmp_path, 4)
    assert aio.fsync_all([(fd, True) for fd in fds]) == [0] * 4  # a context now idle
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            code = 0 if aio.fsync_all([(fd, True) for fd in fds]) == [0] * 4 else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    for fd in fds:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


@needs_aio
def test_a_forked_child_s_flight_takes_a_context_of_its_own(tmp_path: Path) -> None:
    [fd] = _files(tmp_path, 1)
    flight = aio.Flight()
    assert flight.launch(fd, data_only=True)
    assert flight.land() == 0  # it holds its context now
    pid = os.fork()
    if pid == 0:
        code = 0
        try:  # the parent's context is nothing here: launched on it, the kernel would refuse
            code = 0 if flight.launch(fd, data_only=True) and flight.land() == 0 else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert flight.launch(fd, data_only=True)  # the parent's own goes on as before
    assert flight.land() == 0
    os.close(fd)


@needs_aio
def test_aio_max_nr_used_up_falls_back_for_now_not_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio, "_idle", [])
    monkeypatch.setattr(aio, "_unusable", None)

    def no_room(self: Any, kernel: Any) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(aio._Context, "__init__", no_room)
    assert aio.fsync_all([(0, True)]) is None
    assert aio.available()


# -- 4. slots --------------------------------------------------------------------------------


def test_a_slot_holder_cancelled_inside_gives_its_slot_back() -> None:
    async def main() -> None:
        slots = syncs.Slots(1)

        async def hold() -> None:
            async with slots:
                await asyncio.sleep(3600)

        holder = asyncio.ensure_future(hold())
        await asyncio.sleep(0)
        waiters = [asyncio.ensure_future(slots.__aenter__()) for _ in range(3)]
        await asyncio.sleep(0)
        waiters[0].cancel()
        holder.cancel()
        await asyncio.gather(holder, waiters[0], return_exceptions=True)
        await asyncio.wait_for(waiters[1], 5)
        await slots.__aexit__()
        await asyncio.wait_for(waiters[2], 5)
        await slots.__aexit__()
        assert slots._free == 1
        assert not slots._waiters

    asyncio.run(main())


# -- 2. kill -9 while a crowd of runs is being created ---------------------------------------


@pytest.mark.slow
def test_a_kill_while_a_crowd_of_runs_is_being_created_leaves_every_run_whole(
    isolated: Path, log: Path, home: Path
) -> None:
    """Many runs started at once; kill -9 once the first of them is held in step 2 (so its
    step 1 completed durably) while most of the others are still being created (CREATE_SLOTS
    at a time): list and resume --all see whole runs only, and no completed step runs again."""
    from conftest import hold, kill_after_marker

    count = 200
    process = subprocess.Popen(
        [sys.executable, str(FLOWS / "crowd.py"), str(count), "3", "n"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **hold("step2"), "PYTHONPATH": str(FLOWS.parent)},
    )
    kill_after_marker(process, log, "step2", count=1)
    store = RunStore(home)
    runs = home / "runs"
    present = sorted(n.removesuffix(".jsonl") for n in os.listdir(runs) if n.endswith(".jsonl"))
    assert 0 < len(present) < count, "the kill did not land while runs were being created"
    completed_before = {}
    for run_id in present:
        history = store.read(run_id)  # whole: a torn tail at most, never a bad first event
        assert history.started.run_id == run_id
        completed_before[run_id] = sum(e.type == "ActivityCompleted" for e in history.events)
    step1_before = attempts(log, "step1")
    listed = run_wfrun("list", env={"PYTHONPATH": str(FLOWS.parent)})
    assert listed.returncode == 0, listed.stderr[-3000:]
    resumed = run_wfrun("resume", "--all", timeout=600, env={"PYTHONPATH": str(FLOWS.parent)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # step 1 runs again only for the runs whose step 1 had not completed
    again = sum(1 for run_id in present if completed_before[run_id] == 0)
    assert attempts(log, "step1") == step1_before + again
    for run_id in present:
        events = store.read(run_id).events
        assert events[-1].type == "WorkflowCompleted", run_id
        assert sum(e.type == "ActivityCompleted" for e in events) == 3
    leftovers = [n for n in os.listdir(runs) if n.endswith(".tmp")]
    # Not asserted (a crash between open and link leaves one; see the report): reported.
    print("temporary files left after the kill:", leftovers)


# -- 1. the AIO path stranding a whole batch --------------------------------------------------


def _four_syncs(tmp_path: Path) -> list[BaseException | None]:
    fds = _files(tmp_path, syncs.AIO_FROM)

    async def main() -> list[BaseException | None]:
        waits = [syncs.submit_batched(fd, data_only=True)[0] for fd in fds]
        _done, pending = await asyncio.wait(waits, timeout=30)  # a bound only a hang reaches
        assert not pending, "the batch was never settled: its runs wait forever"
        return [w.exception() for w in waits]

    try:
        return asyncio.run(main())
    finally:
        for fd in fds:
            os.close(fd)


def test_without_ctypes_a_crowd_s_syncs_still_happen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python built without libffi has no _ctypes (a common pyenv build): importing
    wfrun.local.aio raises in _hand_over, a loop callback; the batch is dropped, and every run
    of it waits forever holding its sync slot."""
    import wfrun.local

    monkeypatch.delattr(wfrun.local, "aio")
    monkeypatch.setitem(sys.modules, "wfrun.local.aio", None)  # import raises ImportError
    assert _four_syncs(tmp_path) == [None] * syncs.AIO_FROM


@needs_aio
def test_an_unexpected_error_in_the_aio_thread_settles_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_run_at_once calls fsync_all outside _finish's catch-all: anything it raises other
    than what aio.py catches (MemoryError, a ctypes error) kills the thread's job silently."""

    def broken(requests: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(aio, "fsync_all", broken)
    outcomes = _four_syncs(tmp_path)
    assert all(o is None or isinstance(o, BaseException) for o in outcomes)


@needs_aio
def test_io_submit_refused_by_a_sandbox_falls_back_rather_than_failing_every_run(
    tmp_path: Path, shim: KernelShim
) -> None:
    """A seccomp filter that allows io_setup but not io_submit (EPERM, or ENOSYS): the code
    takes any errno but EAGAIN/EINVAL as the request's own fault, so every crowded run fails
    with "Operation not permitted" (exit 74) at every sync, for ever."""
    real_call = shim.call

    def call(*args: Any) -> int:
        if args[0].value == shim.submit:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        return real_call(*args)

    shim.call = call  # type: ignore[method-assign]
    assert _four_syncs(tmp_path) == [None] * syncs.AIO_FROM


def test_struct_layouts_match_linux_aio_abi() -> None:
    assert ctypes.sizeof(aio._Iocb) == 64
    assert aio._Iocb.opcode.offset == 16
    assert aio._Iocb.fildes.offset == 20
    assert aio._Iocb.flags.offset == 56
    assert ctypes.sizeof(aio._Event) == 32
    assert aio._Event.res.offset == 16


@needs_aio
def test_partial_submissions_and_eagain_midway(tmp_path: Path, shim: KernelShim) -> None:
    fds = _files(tmp_path, 5)
    submits = [0]
    real_call = shim.call

    def call(*args: Any) -> int:
        if args[0].value == shim.submit:
            submits[0] += 1
            if submits[0] == 4:
                raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            return real_call(args[0], args[1], ctypes.c_long(1), args[3])  # one at a time
        return real_call(*args)

    shim.call = call  # type: ignore[method-assign]
    try:
        assert aio.fsync_all([(fd, True) for fd in fds]) == [0, 0, 0, None, None]
    finally:
        for fd in fds:
            os.close(fd)
    assert aio.available()


# -- 5. a lone run's syncs, begun aside (`aio.Flight`) ---------------------------------------


@needs_aio
def test_a_flight_lands_with_0_once_the_fsyncs_it_launched_are_done(tmp_path: Path) -> None:
    [fd] = _files(tmp_path, 1)
    flight = aio.Flight()
    try:
        assert flight.launch(fd, data_only=True)
        assert flight.launch(fd, data_only=False)
        assert flight.in_the_air
        assert flight.land() == 0
        assert not flight.in_the_air
        assert flight.land() == 0  # nothing left to wait for
    finally:
        os.close(fd)


@needs_aio
def test_a_flight_refused_for_a_closed_descriptor_holds_nothing(tmp_path: Path) -> None:
    [fd] = _files(tmp_path, 1)
    os.close(fd)
    flight = aio.Flight()
    assert not flight.launch(fd, data_only=True)  # the caller syncs plainly, which says why
    assert not flight.in_the_air
    assert aio.available()  # one file's fault, not the kernel's
    [good] = _files(tmp_path, 1)
    try:
        assert flight.launch(good, data_only=True)
        assert flight.land() == 0
    finally:
        os.close(good)


@needs_aio
def test_a_flight_past_its_most_lands_the_earlier_fsyncs_first(
    tmp_path: Path, shim: KernelShim
) -> None:
    [fd] = _files(tmp_path, 1)
    reaped: list[int] = []

    def on_events(args: Any, shim: KernelShim) -> int:
        got = int(shim.real.call(*args))
        reaped.append(got)
        return got

    shim.on_events = on_events
    flight = aio.Flight()
    try:
        for _ in range(aio.Flight.MOST + 1):
            assert flight.launch(fd, data_only=True)
        assert sum(reaped) == aio.Flight.MOST  # landed before the one past them went up
        assert flight.land() == 0
        assert sum(reaped) == aio.Flight.MOST + 1
    finally:
        os.close(fd)


@needs_aio
def test_a_lone_run_syncs_each_outcome_aside_and_lands_it_before_the_next_step(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    launch, land = aio.Flight.launch, aio.Flight.land

    def launched(flight: aio.Flight, fd: int, *, data_only: bool) -> bool:
        order.append("launch")
        return launch(flight, fd, data_only=data_only)

    def landed(flight: aio.Flight) -> int:
        if flight.in_the_air:
            order.append("land")
        return land(flight)

    monkeypatch.setattr(aio.Flight, "launch", launched)
    monkeypatch.setattr(aio.Flight, "land", landed)
    run = workflows.execute_workflow(StepsWorkflow, {"count": 3}, execution_id="r", home=home)
    assert asyncio.run(run) == [10, 20, 30]
    # Each step's completion goes up as the workflow moves on, and is down before the next
    # step starts, or before the run's end is written.
    assert order == ["launch", "land"] * 3


@needs_aio
def test_a_lone_run_whose_aside_sync_fails_stops_before_its_next_step_and_resumes(
    home: Path, log: Path, shim: KernelShim
) -> None:
    failed = shim.fail_first_reaped()  # the first step's completion: never durable
    run = workflows.execute_workflow(StepsWorkflow, {"count": 3}, execution_id="r", home=home)
    with pytest.raises(workflows.HistoryIOError, match="cannot sync the history"):
        asyncio.run(run)
    assert failed
    assert attempts(log, "step1") == 1
    assert attempts(log, "step2") == 0  # nothing went on after what was not durable
    shim.on_events = None
    resumed = run_wfrun("resume", "r", env={"PYTHONPATH": str(FLOWS.parent)})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert RunStore(home).read("r").events[-1].type == "WorkflowCompleted"


def test_without_native_aio_a_lone_run_syncs_each_outcome_inline(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio, "_unusable", "not here (the test says)")
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    run = workflows.execute_workflow(StepsWorkflow, {"count": 3}, execution_id="r", home=home)
    assert asyncio.run(run) == [10, 20, 30]
    assert len(synced) >= 4  # each step's completion, then the run's end


#: The activities of `TwoAtOnce` whose bodies ran.
BODIES_RAN: list[str] = []


@workflows.activity
async def body(name: str) -> str:
    BODIES_RAN.append(name)
    return name


@workflows.workflow.define(name="test_aio_syncs_two_at_once")
class TwoAtOnce:
    """One step, then two activities started together (in one step of the workflow)."""

    @workflows.workflow.entrypoint
    async def run(self) -> list[str]:
        await body("first")
        return list(await asyncio.gather(body("a"), body("b")))


@needs_aio
def test_no_activity_runs_after_the_aside_sync_it_depends_on_failed(
    home: Path, shim: KernelShim
) -> None:
    """The first step's completion is synced aside and that sync fails (EIO). The workflow
    saw the completion and started two activities at once: the first to start lands the
    flight and stops the run; the second must not run either (its start found nothing in the
    air any more, and went on as if the failed sync had been durable)."""
    BODIES_RAN.clear()
    failed = shim.fail_first_reaped()  # the first step's completion: never durable
    run = workflows.execute_workflow(TwoAtOnce, execution_id="two", home=home)
    with pytest.raises(workflows.HistoryIOError, match="cannot sync the history"):
        asyncio.run(run)
    assert failed
    assert BODIES_RAN == ["first"], BODIES_RAN


@workflows.activity
async def lasting(seconds: float) -> None:
    await asyncio.sleep(seconds)


@workflows.workflow.define(name="test_aio_syncs_timers_past_most")
class TimersWhileAnActivityRuns:
    """More steps than `aio.Flight.MOST` while an activity runs: none of them starts
    anything, so nothing lands their syncs until the flight is full."""

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        running = asyncio.ensure_future(lasting(2.0))
        for _ in range(aio.Flight.MOST + 2):
            await workflows.workflow.sleep(0.001)
        await running
        return 1


@needs_aio
def test_a_failed_aside_sync_landed_to_make_room_is_not_taken_for_durable(
    home: Path, shim: KernelShim
) -> None:
    """The first timer's firing is synced aside and that fsync fails (EIO). Launching past
    `Flight.MOST` lands it: the failure must stop the run. A plain fdatasync after it says
    nothing (the AIO fsync consumed the file's writeback error: errseq), so falling back to
    one must not count as the failed sync's retry."""
    failed = shim.fail_first_reaped()  # the first timer's firing
    run = workflows.execute_workflow(TimersWhileAnActivityRuns, execution_id="t", home=home)
    with pytest.raises(workflows.HistoryIOError, match="cannot sync the history"):
        asyncio.run(run)
    assert failed


@needs_aio
def test_a_lone_run_gives_its_aio_context_back_when_it_ends(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle: list[Any] = []
    monkeypatch.setattr(aio, "_idle", idle)
    for i in range(3):
        run = workflows.execute_workflow(
            StepsWorkflow, {"count": 2}, execution_id=f"r{i}", home=home
        )
        assert asyncio.run(run) == [10, 20]
        assert len(idle) == 1  # the one context, taken by each run in turn: none leaks


@needs_aio
def test_a_flight_closed_with_fsyncs_in_the_air_lands_them_first(tmp_path: Path) -> None:
    [fd] = _files(tmp_path, 1)
    flight = aio.Flight()
    try:
        assert flight.launch(fd, data_only=True)
        assert flight.close() == 0  # landed, then the context went back
        assert not flight.in_the_air
        assert flight.launch(fd, data_only=True)  # on a context taken anew
        assert flight.land() == 0
    finally:
        os.close(fd)


# -- 6. a context that cannot be used again goes back to the kernel -----------------------------


def _still_held(context_id: int) -> bool:
    """Whether the kernel still holds AIO context ``context_id`` for this process."""
    kernel = aio._Kernel()
    try:
        kernel.call(
            ctypes.c_long(kernel.getevents),
            ctypes.c_ulong(context_id),
            ctypes.c_long(0),
            ctypes.c_long(1),
            ctypes.byref((aio._Event * 1)()),
            None,
        )
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # no such context (any other error: the test's fault)
            return False
        raise
    return True


def _reaping_fails(args: Any, shim: KernelShim) -> int:
    raise OSError(errno.EFAULT, "Bad address")


@needs_aio
def test_a_flight_whose_fsync_could_not_be_reaped_hands_its_context_back(
    tmp_path: Path, shim: KernelShim
) -> None:
    [fd] = _files(tmp_path, 1)
    flight = aio.Flight()
    try:
        assert flight.launch(fd, data_only=True)
        assert flight._context is not None
        context_id = flight._context._id.value
        assert _still_held(context_id)
        shim.on_events = _reaping_fails
        assert flight.land() == errno.EIO  # outcome unknown: failed, resumably
        assert not _still_held(context_id)
        shim.on_events = None
        assert flight.launch(fd, data_only=True)  # on a context of its own, anew
        assert flight.land() == 0
    finally:
        flight.close()
        os.close(fd)


@needs_aio
def test_a_batch_whose_fsyncs_could_not_be_reaped_hands_its_context_back(
    tmp_path: Path, shim: KernelShim
) -> None:
    fds = _files(tmp_path, 2)
    held = aio._take()  # the context the batch will use (taken back, then taken again)
    assert held is not None
    aio._idle.append(held)
    shim.on_events = _reaping_fails
    try:
        assert aio.fsync_all([(fd, True) for fd in fds]) == [errno.EIO, errno.EIO]
    finally:
        for fd in fds:
            os.close(fd)
    assert not _still_held(held._id.value)
    assert held not in aio._idle
