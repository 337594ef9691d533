"""kill -9 at every point between a message's send and its record: nothing lost, nothing doubled.

A message goes: the sender posts it to the run's inbox (fsync) → the run's process reads it →
appends its event to the history → fsyncs → delivers it to the workflow → the handler runs
(here: one activity that must run once, then one the test may hold). Each test kills a real
process with SIGKILL at one of those points, once that process has said it got there (a
marker from `crashpoints` or from an activity body), then lets a resume carry the run on and
counts: the message's event is in the history exactly once, its handler's activity ran once,
and the workflow's state holds it once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.local.inbox import Inbox
from wfrun.local.store import RunStore

from conftest import (
    attempts,
    cli,
    history,
    hold,
    kill_after_marker,
    release,
    run_wfrun,
    spawn_wfrun,
    stopping_at,
    wait_for_file,
    wait_for_marker,
    watch_durability,
    wf,
)
from flows.message_crashes import PROBES, ProbedWorkflow

pytestmark = pytest.mark.slow

TALLY = f"{wf('message_crashes')}:TallyWorkflow"


# -- helpers -----------------------------------------------------------------------------------


def live_run(
    isolated: Path, run_id: str, *, point: str | None = None, held: str | None = None
) -> subprocess.Popen[str]:
    """A started run whose process stays live (waiting for ``finish``): it is there to be
    killed at ``point`` or inside the handler body ``held``."""
    marker = isolated / f"{run_id}.live"
    args = ("start", TALLY, "--arg", f"marker={marker}", "--run-id", run_id)
    if point is not None:
        process = stopping_at(point, *args)
    else:
        process = spawn_wfrun(*args, env=hold(held) if held else None)
    wait_for_file(marker, process)
    return process


def waiting_run(run_id: str) -> None:
    """A run that no process holds: it waits, recorded WAITING, for its next message."""
    started = cli("start", TALLY, "--run-id", run_id, "--max-wait", "0")
    assert started.exit_code == 75, started.output


def sent(home: Path, run_id: str, name: str) -> str:
    """The id of the one message named ``name`` in the run's inbox (a killed sender says
    nothing, but its message is there)."""
    lines = (home / "inbox" / f"{run_id}.jsonl").read_bytes().splitlines()
    [message] = [str(m["id"]) for m in map(orjson.loads, lines) if m["name"] == name]
    return message


def records(home: Path, run_id: str, message: str) -> list[str]:
    """The types of the events that record ``message``, in history order."""
    return [e["type"] for e in history(home, run_id) if e.get("message") == message]


def resume_waits(run_id: str) -> None:
    """Resume the run as far as it goes, then let it wait again (nothing else to do)."""
    resumed = cli("resume", run_id, "--max-wait", "0")
    assert resumed.exit_code == 75, resumed.output


def tally(run_id: str) -> list[str]:
    """The items in the workflow's state, as its query answers from the history."""
    asked = cli("query", run_id, "tally")
    assert asked.exit_code == 0, asked.output
    result: list[str] = orjson.loads(asked.stdout)
    return result


def finish(run_id: str) -> list[str]:
    """End a run that no process holds (``finish`` resumes it here); its result."""
    done = cli("signal", run_id, "finish")
    assert done.exit_code == 0, done.output
    result: list[str] = orjson.loads(done.stdout)
    return result


def assert_taken_once(
    home: Path, log: Path, run_id: str, message: str, kinds: tuple[str, ...] = ("SignalReceived",)
) -> None:
    """The message is recorded once (``kinds``: its events), its handler's activity ran once,
    and the workflow's state holds it once; one more resume changes none of it."""
    assert records(home, run_id, message) == list(kinds)
    assert attempts(log, "note-x") == 1
    resume_waits(run_id)
    assert records(home, run_id, message) == list(kinds)
    assert tally(run_id) == ["x"]
    assert finish(run_id) == ["x"]
    assert attempts(log, "note-x") == 1


# -- signals -----------------------------------------------------------------------------------


def test_a_signal_whose_sender_dies_right_after_the_inbox_fsync_is_delivered_once_by_resume_all(
    home: Path, log: Path
) -> None:
    waiting_run("w")
    sender = stopping_at("inbox-posted", "signal", "w", "add", '{"item": "x"}')
    kill_after_marker(sender, log, "inbox-posted")
    assert sender.returncode == -signal.SIGKILL
    message = sent(home, "w", "add")
    assert records(home, "w", message) == []  # only the inbox has it

    resumed = cli("resume", "--all", "--max-wait", "0")  # a new message: this run goes on
    assert resumed.exit_code == 75, resumed.output
    assert_taken_once(home, log, "w", message)


def test_a_signal_whose_sender_dies_right_after_the_inbox_fsync_still_reaches_the_live_run(
    isolated: Path, home: Path, log: Path
) -> None:
    live = live_run(isolated, "r")
    sender = stopping_at("inbox-posted", "signal", "r", "add", '{"item": "x"}')
    kill_after_marker(sender, log, "inbox-posted")
    finished = cli("signal", "r", "finish")  # taken after "add", by the same live process
    assert finished.exit_code == 0, finished.output
    out, err = live.communicate(timeout=60)
    assert live.returncode == 0, err
    assert orjson.loads(out) == ["x"]
    assert records(home, "r", sent(home, "r", "add")) == ["SignalReceived"]
    assert attempts(log, "note-x") == 1


def test_a_signal_the_live_run_read_but_never_recorded_is_recorded_once_by_the_next_resume(
    isolated: Path, home: Path, log: Path
) -> None:
    live = live_run(isolated, "r", point="inbox-read")
    stored = cli("signal", "r", "add", '{"item": "x"}', "--no-resume")
    assert stored.exit_code == 0, stored.output  # acknowledged: from here on it must arrive
    kill_after_marker(live, log, "inbox-read")
    message = sent(home, "r", "add")
    assert records(home, "r", message) == []
    resume_waits("r")
    assert_taken_once(home, log, "r", message)


def test_a_signal_whose_live_run_dies_before_recording_it_is_carried_on_by_its_sender(
    isolated: Path, home: Path, log: Path
) -> None:
    live = live_run(isolated, "r", point="inbox-read")
    sender = spawn_wfrun("signal", "r", "add", '{"item": "x"}', "--max-wait", "0")
    kill_after_marker(live, log, "inbox-read")
    # The sender waited for the live run to record it; the run's lock fell with the process,
    # so the sender resumed the run itself and delivered the message.
    _, err = sender.communicate(timeout=60)
    assert sender.returncode == 75, err
    assert "signal add delivered to run r" in err
    assert_taken_once(home, log, "r", sent(home, "r", "add"))


@pytest.mark.parametrize("point", ["message-written", "message-synced"])
def test_a_signal_recorded_but_not_yet_handled_is_handled_once_after_a_kill(
    isolated: Path, home: Path, log: Path, point: str
) -> None:
    live = live_run(isolated, "r", point=point)
    sender = spawn_wfrun("signal", "r", "add", '{"item": "x"}', "--max-wait", "0")
    wait_for_marker(live, log, point)
    _, err = sender.communicate(timeout=60)  # it sees the record while the live run stands
    assert sender.returncode == 0, err
    assert "recorded by the live run" in err
    kill_after_marker(live, log, point)
    assert attempts(log, "note-x") == 0  # killed before the handler ran
    message = sent(home, "r", "add")
    assert records(home, "r", message) == ["SignalReceived"]
    resume_waits("r")  # the resume delivers the recorded signal, as a replay would
    assert_taken_once(home, log, "r", message)


def test_an_activity_a_signal_handler_completed_does_not_run_again_after_a_kill_in_the_handler(
    isolated: Path, home: Path, log: Path
) -> None:
    live = live_run(isolated, "r", held="in-x")
    sender = run_wfrun("signal", "r", "add", '{"item": "x"}', "--max-wait", "0")
    assert sender.returncode == 0, sender.stderr
    kill_after_marker(live, log, "in-x")  # note-x completed, the handler waits in pause
    resume_waits("r")
    assert attempts(log, "in-x") == 2  # in flight at the kill: it runs again
    assert_taken_once(home, log, "r", sent(home, "r", "add"))


# -- updates -----------------------------------------------------------------------------------


def test_an_update_whose_sender_dies_while_waiting_is_applied_and_answered_once(
    isolated: Path, home: Path, log: Path
) -> None:
    live = live_run(isolated, "r", held="in-x")
    sender = stopping_at("answer-awaited", "update", "r", "add_now", '{"item": "x"}')
    kill_after_marker(sender, log, "answer-awaited")
    release(log, "in-x")  # the handler goes on, its sender gone
    finished = cli("signal", "r", "finish")
    assert finished.exit_code == 0, finished.output
    out, err = live.communicate(timeout=60)
    assert live.returncode == 0, err
    assert orjson.loads(out) == ["x"]
    message = sent(home, "r", "add_now")
    assert records(home, "r", message) == ["UpdateAccepted", "UpdateCompleted"]
    [answer] = [e for e in history(home, "r") if e["type"] == "UpdateCompleted"]
    assert answer["result"] == 1
    assert attempts(log, "note-x") == 1


@pytest.mark.parametrize("point", ["message-synced", "in-x"])
def test_an_update_cut_off_by_a_crash_before_its_answer_is_answered_once_on_resume(
    isolated: Path, home: Path, log: Path, point: str
) -> None:
    """Both the run's process and the waiting sender are killed: after the update's accept
    was made durable, or inside its handler once its activity had completed."""
    if point == "in-x":
        live = live_run(isolated, "r", held=point)
    else:
        live = live_run(isolated, "r", point=point)
    sender = stopping_at("answer-awaited", "update", "r", "add_now", '{"item": "x"}')
    kill_after_marker(sender, log, "answer-awaited")
    kill_after_marker(live, log, point)
    message = sent(home, "r", "add_now")
    assert records(home, "r", message) == ["UpdateAccepted"]
    resume_waits("r")  # the handler runs on (or from its start) and answers
    assert records(home, "r", message) == ["UpdateAccepted", "UpdateCompleted"]
    [answer] = [e for e in history(home, "r") if e["type"] == "UpdateCompleted"]
    assert answer["result"] == 1
    assert_taken_once(home, log, "r", message, ("UpdateAccepted", "UpdateCompleted"))


# -- cancel ------------------------------------------------------------------------------------


def assert_cancelled_once(home: Path, log: Path, run_id: str) -> None:
    """One CancelRequested, one WorkflowCanceled, the compensation's activity run once."""
    resumed = cli("resume", run_id, "--json")  # ended: it only reports
    assert resumed.exit_code == 1, resumed.output
    assert orjson.loads(resumed.stdout)["status"] == "CANCELED"
    kinds = [e["type"] for e in history(home, run_id)]
    assert kinds.count("CancelRequested") == 1
    assert kinds.count("WorkflowCanceled") == 1
    assert records(home, run_id, sent(home, run_id, "cancel")) == ["CancelRequested"]
    assert attempts(log, "note-cleanup") == 1


def test_a_cancel_whose_sender_dies_right_after_the_inbox_fsync_cancels_the_run_once(
    home: Path, log: Path
) -> None:
    waiting_run("w")
    sender = stopping_at("inbox-posted", "cancel", "w", "--reason", "not needed")
    kill_after_marker(sender, log, "inbox-posted")
    assert records(home, "w", sent(home, "w", "cancel")) == []
    resumed = cli("resume", "w")
    assert resumed.exit_code == 1, resumed.output
    assert_cancelled_once(home, log, "w")


@pytest.mark.parametrize("point", ["inbox-read", "message-synced", "in-cleanup"])
def test_a_cancel_ends_the_run_canceled_once_whatever_point_its_live_run_is_killed_at(
    isolated: Path, home: Path, log: Path, point: str
) -> None:
    if point == "in-cleanup":
        live = live_run(isolated, "r", held=point)
    else:
        live = live_run(isolated, "r", point=point)
    sender = spawn_wfrun("cancel", "r", "--max-wait", "0")
    if point == "inbox-read":  # not recorded: the sender carries the run on, to its end
        kill_after_marker(live, log, point)
        _, err = sender.communicate(timeout=60)
        assert sender.returncode == 1, err
        assert "cancellation delivered to run r" in err
    else:  # recorded: the sender returns while the live run stands, then the run is killed
        wait_for_marker(live, log, point)
        _, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err
        assert "recorded by the live run" in err
        kill_after_marker(live, log, point)
    assert_cancelled_once(home, log, "r")
    if point == "in-cleanup":
        assert attempts(log, "in-cleanup") == 2  # in flight at the kill: it runs again


# -- a power cut -------------------------------------------------------------------------------
#
# A kill -9 keeps what the process wrote (the page cache outlives it); a power cut keeps only
# what was fsync'd. These two watch the fsyncs in-process instead of cutting the power.


def identity(info: os.stat_result) -> tuple[int, int]:
    """Which file: fsync sees a descriptor, the test knows a path."""
    return info.st_dev, info.st_ino


def test_the_first_message_to_a_run_syncs_the_new_inbox_file_s_name_too(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync makes a file's contents durable, not its name in a new folder entry (fsync(2)):
    a message acknowledged in a just-created inbox must also have its folders synced, or a
    power cut can lose the whole inbox. Later messages need the file's fsync only."""
    waiting_run("w")
    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(identity(os.fstat(fd)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    inbox = Inbox(RunStore(), "w")
    inbox.post("signal", "add", b'{"item": "x"}', "2026-01-01T00:00:00Z")
    assert identity(os.stat(inbox.path)) in synced
    assert identity(os.stat(inbox.path.parent)) in synced  # the file's name in its folder
    assert identity(os.stat(home)) in synced  # the inbox folder's name in the home
    synced.clear()
    inbox.post("signal", "add", b'{"item": "y"}', "2026-01-01T00:00:01Z")
    assert synced == [identity(os.stat(inbox.path))]


def test_a_signal_is_durable_in_the_history_before_its_handler_s_first_activity_runs(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut keeps only what was synced: at the moment the handler's activity runs,
    the synced part of the history must already hold the SignalReceived it runs for (else a
    power cut there would lose a message that already had effects)."""
    durable: dict[tuple[int, int], int] = {}  # file → its events' length at its last sync

    def synced(fd: int, info: os.stat_result, events: bytes) -> None:
        durable[identity(info)] = len(events)

    watch_durability(monkeypatch, synced)
    path = home / "runs" / "p.jsonl"
    seen: list[bytes] = []

    def probe() -> None:
        seen.append(path.read_bytes()[: durable.get(identity(os.stat(path)), 0)])

    async def scenario() -> None:
        with pytest.raises(workflows.WfrunError, match="WAITING"):
            await workflows.execute_workflow(ProbedWorkflow, execution_id="p")
        await workflows.signal_workflow("p", "poke")

    PROBES.append(probe)
    try:
        asyncio.run(scenario())
    finally:
        PROBES.remove(probe)
    [at_the_handler] = seen
    assert b'"type":"SignalReceived"' in at_the_handler
