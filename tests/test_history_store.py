"""The history file: append-only JSONL, ids without gaps, private, damage named and never hidden."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.clock import SystemClock
from wfrun.errors import HistoryCorruptError, InvalidRunIdError, RunLockedError
from wfrun.events import EVENT_TYPES, RunResumed, WorkflowStarted
from wfrun.local.store import RunStore, validate_run_id

from conftest import attempts, cli, cut_history, signed, wf
from flows.steps import StepsWorkflow

STEPS = f"{wf('steps')}:StepsWorkflow"


def completed_run(run_id: str = "r", count: int = 3) -> Path:
    asyncio.run(workflows.execute_workflow(StepsWorkflow, {"count": count}, execution_id=run_id))
    return RunStore().path(run_id)


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_every_event_has_a_gapless_id_a_utc_timestamp_and_a_known_type() -> None:
    events = lines(completed_run())
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["ts"].endswith("Z") for e in events)
    assert all(e["type"] in EVENT_TYPES for e in events)


def test_the_first_event_carries_what_resume_needs() -> None:
    first = lines(completed_run())[0]
    assert first["type"] == "WorkflowStarted"
    assert first["run_id"] == "r"
    assert first["workflow"] == "steps"
    assert first["target"] == "flows.steps:StepsWorkflow"
    assert first["input"] == {"count": 3, "delay": 0.0}
    assert first["format"] == 3
    assert {"wfrun_version", "seed", "cwd", "max_payload", "continue_as_new_at"} <= first.keys()
    assert (first["parent"], first["continued_from"]) == (None, None)


def test_history_files_are_private(home: Path) -> None:
    path = completed_run()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "runs").stat().st_mode) == 0o700


def test_a_torn_last_line_is_cut_off_on_resume_and_reported(log: Path) -> None:
    path = completed_run()
    cut_history("r", keep=4, tail=b'{"id":5,"ts":"2026-11-24T10:0')
    result = cli("resume", "r")
    assert result.exit_code == 0, result.stderr
    assert "torn" in result.stderr
    events = lines(path)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    resumed = [e for e in events if e["type"] == "RunResumed"]
    assert len(resumed) == 1
    assert "torn" in resumed[0]["repaired"]


def test_a_damaged_line_is_refused_with_its_number_and_the_file_left_alone() -> None:
    path = completed_run()
    data = path.read_bytes().splitlines(keepends=True)
    data[2] = b'{"id":3,"ts":"2026-11-24T10:00:00Z","type":"ActivityStarted",garbage}\n'
    damaged = b"".join(data[:5])
    path.write_bytes(damaged)
    for command in (["resume", "r"], ["history", "r"], ["show", "r"], ["replay", "r"]):
        result = cli(*command)
        assert result.exit_code == 6, command
        assert f"{path}:3" in result.stderr
    assert path.read_bytes() == damaged


def test_a_gap_in_the_ids_is_damage() -> None:
    path = completed_run()
    data = path.read_bytes().splitlines(keepends=True)
    del data[2]
    path.write_bytes(b"".join(data))
    with pytest.raises(HistoryCorruptError, match=":3: event id 4 where 3 was expected"):
        RunStore().read("r")


def test_an_unknown_event_type_is_damage_not_skipped() -> None:
    path = completed_run()
    data = path.read_bytes().splitlines(keepends=True)
    data[2] = signed(
        {"id": 3, "ts": "2026-11-24T10:00:00Z", "type": "ActivityTeleported", "seq": 1}
    )
    path.write_bytes(b"".join(data))
    with pytest.raises(HistoryCorruptError, match="unknown event type 'ActivityTeleported'"):
        RunStore().read("r")


def test_an_event_missing_a_field_is_damage() -> None:
    path = completed_run()
    data = path.read_bytes().splitlines(keepends=True)
    data[2] = signed({"id": 3, "ts": "2026-11-24T10:00:00Z", "type": "ActivityStarted", "seq": 1})
    path.write_bytes(b"".join(data))
    with pytest.raises(HistoryCorruptError, match="ActivityStarted lacks attempt"):
        RunStore().read("r")


def test_an_outcome_for_a_command_never_scheduled_is_damage(log: Path) -> None:
    path = completed_run()
    cut_history("r", keep=4)
    with open(path, "ab") as f:
        f.write(
            signed({"id": 5, "ts": "2026-11-24T10:00:00.000000Z", "type": "TimerFired", "seq": 9})
        )
    before = path.read_bytes()
    result = cli("resume", "r")
    assert result.exit_code == 6
    assert "command #9" in result.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden", "a..b", "x" * 129, "sp ace"])
def test_run_ids_outside_the_allowed_alphabet_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRunIdError):
        validate_run_id(bad)


@pytest.mark.parametrize("command", ["history", "show", "resume", "replay"])
def test_the_cli_refuses_a_path_traversing_run_id_with_exit_2(command: str, home: Path) -> None:
    result = cli(command, "../../etc/passwd")
    assert result.exit_code == 2
    assert "invalid run id" in result.stderr


def test_start_refuses_a_bad_run_id_before_creating_anything(home: Path) -> None:
    result = cli("start", STEPS, "--arg", "count=1", "--run-id", "../x")
    assert result.exit_code == 2
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())


def test_a_run_held_by_another_process_is_refused_with_exit_5(log: Path) -> None:
    completed_run()
    cut_history("r", keep=4)
    writer, _ = RunStore().open_for_append("r", SystemClock())  # this test holds the lock
    try:
        result = cli("resume", "r")
        assert result.exit_code == 5
        assert "locked" in result.stderr
        assert cli("start", STEPS, "--arg", "count=3", "--run-id", "r").exit_code == 5
    finally:
        writer.close()
    assert attempts(log, "step3") == 1  # nothing ran while it was locked


def test_a_second_writer_in_the_same_process_is_refused_too() -> None:
    completed_run()
    store = RunStore()
    writer, _ = store.open_for_append("r", SystemClock())
    try:
        with pytest.raises(RunLockedError):
            store.open_for_append("r", SystemClock())
    finally:
        writer.close()


def test_the_lock_is_released_when_the_run_ends() -> None:
    completed_run()
    assert not RunStore().is_locked("r")


def test_a_resume_is_marked_by_a_run_resumed_event(log: Path) -> None:
    path = completed_run()
    cut_history("r", keep=4)
    assert cli("resume", "r").exit_code == 0
    kinds = [e["type"] for e in lines(path)]
    assert kinds[4] == RunResumed.__dataclass_fields__["type"].default
    assert kinds[0] == WorkflowStarted.__dataclass_fields__["type"].default


def test_the_first_run_in_a_new_home_makes_the_names_of_its_folders_durable(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync(2) of a file covers its contents, not the folder entries that name it: a power cut
    after the first start of a home must not lose the runs folder with the run in it."""
    import os

    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((info.st_dev, info.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert not home.exists()
    started = cli("start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=1", "--run-id", "r")
    assert started.exit_code == 0, started.output
    for folder in (home.parent, home, home / "runs"):
        info = os.stat(folder)
        assert (info.st_dev, info.st_ino) in synced, folder


def test_a_start_that_finds_its_run_existing_keeps_no_descriptor_a_fork_would_close(
    home: Path,
) -> None:
    """The refused writer stays alive in the exception's traceback (the caller resumes the run
    while handling it): it must not still name a descriptor, which a fork's child would close
    by number when that number belongs to another file by then."""
    from wfrun.local import store as store_module

    started = cli("start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=1", "--run-id", "r")
    assert started.exit_code == 0, started.output
    first = orjson.loads((home / "runs" / "r.jsonl").read_bytes().splitlines()[0])
    fields = {k: v for k, v in first.items() if k not in ("id", "ts", "type", "crc")}
    refused = False
    try:
        RunStore().create(fields, SystemClock())
    except FileExistsError:
        refused = True
        assert all(writer._fd == -1 for writer in store_module._open_writers)
    assert refused
