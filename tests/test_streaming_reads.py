"""Long histories are read and shown as a stream (issue 11, item 4): every line checked as a
whole read checks it, rows printed before the end is read, and damage deep in a file still
reported with its file, line and exit 6 after the rows before it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from wfrun.errors import HistoryCorruptError
from wfrun.events import (
    FORMAT_VERSION,
    ActivityCompleted,
    ActivityScheduled,
    ActivityStarted,
    Event,
    WorkflowCompleted,
    WorkflowStarted,
    serialize,
)
from wfrun.local import listing, stream
from wfrun.local.store import RunStore

from conftest import cli, cut_history, run_wfrun, signed, through_a_pty

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
TS = "2026-11-28T10:00:00.000000Z"


def write_history(home: Path, run_id: str, steps: int, name: str = "noop") -> Path:
    """A completed run of ``steps`` activities (3 events each, 2 + 3 * steps in all), written
    directly as a run writes it."""
    events: list[Event] = [
        WorkflowStarted(
            id=1,
            ts=TS,
            format=FORMAT_VERSION,
            run_id=run_id,
            workflow="long",
            target="flows/long.py:Long",
            input={"steps": steps},
            wfrun_version="test",
            seed=1,
            cwd="/tmp",
            max_payload=2 * 1024 * 1024,
        )
    ]
    for seq in range(1, steps + 1):
        n = len(events) + 1
        events += [
            ActivityScheduled(id=n, ts=TS, seq=seq, name=name, input={"i": seq}),
            ActivityStarted(id=n + 1, ts=TS, seq=seq, attempt=1),
            ActivityCompleted(id=n + 2, ts=TS, seq=seq, attempt=1, duration=0.001, result=seq),
        ]
    events.append(WorkflowCompleted(id=len(events) + 1, ts=TS, result=steps))
    runs = home / "runs"
    runs.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = runs / f"{run_id}.jsonl"
    path.write_bytes(b"".join(serialize(event) + b"\n" for event in events))
    path.chmod(0o600)
    return path


def flip_line(path: Path, number: int) -> None:
    """Change one character of line ``number`` (1-based): its checksum no longer matches."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = lines[number - 1].replace(b'"ts":"2026', b'"ts":"2025', 1)
    path.write_bytes(b"".join(lines))


def streamed_ids(run_id: str, seen: list[int] | None = None) -> list[int]:
    """The ids of a run's events as `RunStore.stream` hands them out, into ``seen`` as they
    come (what was handed out before an error)."""
    seen = [] if seen is None else seen
    with RunStore().stream(run_id) as events:
        for event, _ in events:
            seen.append(event.id)
    return seen


# -- the stream checks what a whole read checks ---------------------------------------------


def _flipped(path: Path) -> None:
    flip_line(path, 3)


def _gap(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))


def _after_the_end(path: Path) -> None:
    last = orjson.loads(path.read_bytes().splitlines()[-1])
    path.write_bytes(path.read_bytes() + signed({**last, "id": last["id"] + 1}))


def _garbage_tail(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"this is no event at all")


def _other_run(path: Path) -> None:
    path.rename(path.with_name("other.jsonl"))


def _too_new(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(signed({**orjson.loads(lines[0]), "format": 99}) + b"".join(lines[1:]))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _torn_first_line(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


DAMAGE: dict[str, Callable[[Path], None]] = {
    "a changed line": _flipped,
    "a gap in the ids": _gap,
    "an event after the end": _after_the_end,
    "a tail that is no event": _garbage_tail,
    "another run's file": _other_run,
    "a format from the future": _too_new,
    "an empty file": _empty,
    "only a torn first line": _torn_first_line,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_streamed_read_reports_the_same_damage_as_a_whole_read(home: Path, damage: str) -> None:
    path = write_history(home, "r", steps=3)
    DAMAGE[damage](path)
    run_id = "other" if damage == "another run's file" else "r"  # a file that holds run r
    store = RunStore()
    with pytest.raises(HistoryCorruptError) as whole:
        store.read(run_id)
    with pytest.raises(HistoryCorruptError) as streamed:
        streamed_ids(run_id)
    assert str(streamed.value) == str(whole.value)
    assert streamed.value.line == whole.value.line


def test_a_streamed_read_of_a_torn_tail_says_what_a_whole_read_says(home: Path) -> None:
    path = write_history(home, "r", steps=3)
    cut_history("r", keep=6, tail=b'{"id":7,"ts')
    store = RunStore()
    whole = store.read("r")
    with store.stream("r") as events:
        streamed = [event for event, _ in events]
    assert streamed == whole.events
    assert events.note == whole.note
    assert str(path) in (events.note or "")


def test_lines_split_across_chunks_come_out_whole_and_in_order(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_history(home, "r", steps=40)
    monkeypatch.setattr(stream, "CHUNK", 97)  # a prime: chunk ends fall everywhere in lines
    with RunStore().stream("r") as events:
        read = list(events)
    assert [line for _, line in read] == path.read_bytes().splitlines()
    assert [event for event, _ in read] == RunStore().read("r").events


def test_events_before_damage_are_handed_out_before_it_is_reached(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_history(home, "r", steps=100)
    flip_line(path, 250)
    monkeypatch.setattr(stream, "CHUNK", 4096)
    seen: list[int] = []
    with pytest.raises(HistoryCorruptError, match=r"r\.jsonl:250: .*checksum"):
        streamed_ids("r", seen)
    assert seen == list(range(1, 250))


# -- the command line ------------------------------------------------------------------------

#: Past the rows printed at a time (500), so that the damage is met chunks after the start.
LONG = 400  # steps: 1,202 events
DAMAGED_LINE = 1100


def test_history_piped_prints_the_rows_before_damage_then_exits_6_naming_the_line(
    home: Path,
) -> None:
    path = write_history(home, "long", steps=LONG)
    flip_line(path, DAMAGED_LINE)
    result = run_wfrun("history", "long")
    assert result.returncode == 6
    rows = result.stdout.splitlines()
    assert rows[0].startswith("id\tts\ttype")
    assert [int(row.split("\t")[0]) for row in rows[1:]] == list(range(1, DAMAGED_LINE))
    assert f"{path}:{DAMAGED_LINE}:" in result.stderr
    assert "checksum" in result.stderr


def test_history_json_prints_the_stored_lines_before_damage_then_exits_6(home: Path) -> None:
    path = write_history(home, "long", steps=LONG)
    flip_line(path, DAMAGED_LINE)
    result = run_wfrun("history", "long", "--json")
    assert result.returncode == 6
    stored = path.read_bytes().splitlines(keepends=True)
    assert result.stdout.encode() == b"".join(stored[: DAMAGED_LINE - 1])
    assert f"{path}:{DAMAGED_LINE}:" in result.stderr


def test_history_on_a_terminal_shows_the_rows_before_damage_then_the_damage(home: Path) -> None:
    path = write_history(home, "long", steps=LONG)
    flip_line(path, DAMAGED_LINE)
    code, screen = through_a_pty(["history", "long"], columns=120)
    assert code == 6
    text = ANSI.sub(b"", screen).decode().replace("\r", "")
    ids = [int(m) for m in re.findall(r"^ *(\d+) \d\d:\d\d:\d\d", text, flags=re.MULTILINE)]
    assert ids == list(range(1, DAMAGED_LINE))
    # The report comes after the rows (they are not held back), and names the line.
    assert text.index(f"{DAMAGED_LINE}:") > text.index(f"{DAMAGED_LINE - 1} 10:00:00")
    assert "long.jsonl" in text


def test_a_long_history_on_a_terminal_streams_in_rows_aligned_across_chunks(home: Path) -> None:
    write_history(home, "long", steps=LONG)
    code, screen = through_a_pty(["history", "long"], columns=80)
    assert code == 0
    lines = ANSI.sub(b"", screen).decode().replace("\r", "").splitlines()
    rows = [line for line in lines if re.match(r" *\d+ \d\d:\d\d:\d\d", line)]
    assert [int(row.split()[0]) for row in rows] == list(range(1, 2 + 3 * LONG + 1))
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    # Every row's columns start where the first chunk put them, late rows too.
    assert len({row.index("10:00:00") for row in rows}) == 1
    assert len({row.index("Activity") for row in rows if "Activity" in row}) == 1
    assert any(f"noop#{LONG}" in row for row in rows)  # a late, longer name is not cut


def test_a_newline_in_a_recorded_name_keeps_its_row_on_one_line_on_a_terminal(
    home: Path,
) -> None:
    write_history(home, "odd", steps=1, name="two\nlines")
    code, screen = through_a_pty(["history", "odd"], columns=120)
    assert code == 0
    lines = ANSI.sub(b"", screen).decode().replace("\r", "").splitlines()
    [scheduled] = [line for line in lines if "ActivityScheduled" in line]
    assert "two\\nlines#1" in scheduled
    assert not any(line.startswith("lines") for line in lines)


# -- the list index ---------------------------------------------------------------------------


#: How old a file must be for the index to remember it, in these tests (2 s by default).
SETTLED = 50_000_000  # ns


@pytest.fixture
def remembering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "_RACY", SETTLED)


def settle(home: Path) -> None:
    """Wait until every run file is old enough to be remembered: a change made after this
    has a change time the index cannot hold (the kernel's clock ticks coarser than ns)."""
    newest = max(path.stat().st_ctime_ns for path in (home / "runs").glob("*.jsonl"))
    while time.time_ns() - newest < 2 * SETTLED:
        time.sleep(0.01)


def edit_index(index: Path, name: str, **fields: object) -> None:
    """Change what the index holds for file ``name``, keeping the file identity it holds."""
    data = orjson.loads(index.read_bytes())
    names = list(listing.RunEnds.__dataclass_fields__)
    for field, value in fields.items():
        data["runs"][name][4][names.index(field)] = value
    index.write_bytes(orjson.dumps(data))


def listed() -> dict[str, tuple[str, str]]:
    return {
        r["run_id"]: (r["workflow"], r["status"])
        for r in orjson.loads(cli("list", "--json").stdout)
    }


@pytest.mark.usefixtures("remembering")
def test_list_takes_an_unchanged_run_from_the_index(home: Path) -> None:
    write_history(home, "a", steps=1)
    settle(home)
    assert listed() == {"a": ("long", "COMPLETED")}
    edit_index(home / "runs" / listing.INDEX, "a.jsonl", workflow="remembered")
    assert listed() == {"a": ("remembered", "COMPLETED")}


@pytest.mark.usefixtures("remembering")
def test_list_reads_a_run_again_once_its_file_changed(home: Path) -> None:
    write_history(home, "a", steps=2)
    write_history(home, "b", steps=2)
    settle(home)
    listed()
    for name in ("a.jsonl", "b.jsonl"):
        edit_index(home / "runs" / listing.INDEX, name, workflow="remembered")
    cut_history("a", keep=5)  # shorter: a crash after its first activity
    flip_line(home / "runs" / "b.jsonl", 8)  # its last line, as long as it was: in place
    assert listed() == {"a": ("long", "INTERRUPTED"), "b": ("?", "DAMAGED")}


def test_list_does_not_remember_a_file_changed_in_the_last_seconds(home: Path) -> None:
    write_history(home, "a", steps=1)  # just now: a write in the same clock tick could follow
    assert listed() == {"a": ("long", "COMPLETED")}
    index = home / "runs" / listing.INDEX
    assert not index.exists() or "a.jsonl" not in orjson.loads(index.read_bytes())["runs"]


def _garbage(index: Path) -> None:
    index.write_bytes(b"\x00not json")


def _not_a_status(index: Path) -> None:
    edit_index(index, "a.jsonl", workflow="remembered", status="SLEEPING")


def _not_a_time(index: Path) -> None:
    edit_index(index, "a.jsonl", workflow="remembered", started="yesterday")


def _writable_by_others(index: Path) -> None:
    edit_index(index, "a.jsonl", workflow="remembered")
    index.chmod(0o666)


def _a_link(index: Path) -> None:
    other = index.parent.parent / "elsewhere"
    index.rename(other)
    edit_index(other, "a.jsonl", workflow="remembered")
    index.symlink_to(other)


@pytest.mark.usefixtures("remembering")
@pytest.mark.parametrize(
    "spoil",
    [_garbage, _not_a_status, _not_a_time, _writable_by_others, _a_link],
    ids=lambda spoil: spoil.__name__.strip("_"),
)
def test_an_index_that_is_damaged_or_not_wfrun_s_own_is_not_believed(
    home: Path, spoil: Callable[[Path], None]
) -> None:
    write_history(home, "a", steps=1)
    settle(home)
    listed()
    spoil(home / "runs" / listing.INDEX)
    assert listed() == {"a": ("long", "COMPLETED")}
    assert listed() == {"a": ("long", "COMPLETED")}  # and rebuilt
