"""Damage is detected, never believed: a changed history is refused (exit 6) with its line.

Format 2 puts a checksum on every line, so a flipped bit is caught however plausible the result
looks; what a checksum cannot catch (an edit that also fixes the checksum) meets the field
checks. A seeded fuzzer then throws thousands of damaged files at every command: no traceback,
no hang, exit codes from the SPEC's table only, and no file changed except by a tail repair.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

import wfrun as workflows
from wfrun.errors import HistoryCorruptError
from wfrun.events import with_checksum
from wfrun.local.history import parse_history
from wfrun.local.store import RunStore

from conftest import cli, signed, wf
from flows.steps import StepsWorkflow

SPEC_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 74, 75, 130}


def steps_run(run_id: str = "r") -> Path:
    asyncio.run(workflows.execute_workflow(StepsWorkflow, {"count": 2}, execution_id=run_id))
    return RunStore().path(run_id)


def edit_line(path: Path, number: int, edit: Callable[[dict], None]) -> None:
    """Change one event and sign it again: damage that only the field checks can catch."""
    lines = path.read_bytes().splitlines(keepends=True)
    event = orjson.loads(lines[number - 1])
    edit(event)
    lines[number - 1] = signed(event)
    path.write_bytes(b"".join(lines))


def test_every_single_bit_flip_is_caught() -> None:
    path = steps_run()
    data = path.read_bytes()
    believed = []
    for offset in range(len(data) - 1):  # the last byte is the newline: a flip there is a tear
        for bit in range(8):
            flipped = bytearray(data)
            flipped[offset] ^= 1 << bit
            try:
                parse_history(path, bytes(flipped))
            except HistoryCorruptError:
                continue
            believed.append((offset, bit))
    assert believed == []


def test_a_flip_of_the_last_newline_is_a_torn_tail_not_a_changed_event() -> None:
    path = steps_run()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    history = parse_history(path, bytes(data))
    assert history.torn_tail
    assert len(history.events) == len(data.splitlines()) - 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ts", "2026-11-24T10:00:00"),  # no offset
        ("ts", "yesterday"),
        ("ts", "2026-02-31T10:00:00Z"),
        ("seq", 0),
        ("attempt", -1),
        ("duration", -0.5),
        ("seq", True),
    ],
)
def test_a_field_that_is_not_what_it_should_be_is_damage(field: str, value: object) -> None:
    path = steps_run()
    edit_line(path, 3, lambda event: event.__setitem__(field, value))
    for command in ("history", "show", "replay", "resume"):
        result = cli(command, "r")
        assert result.exit_code == 6, (command, result.output)
        assert f"{path}:3" in result.stderr


def test_values_nested_too_deep_are_damage_not_a_traceback() -> None:
    path = steps_run()
    lines = path.read_bytes().splitlines(keepends=True)
    event = orjson.loads(lines[3])
    event.pop("crc")
    event["result"] = "DEEP"
    deep = b"[" * 400 + b"1" + b"]" * 400  # more than orjson writes (254), less than it reads
    lines[3] = with_checksum(orjson.dumps(event).replace(b'"DEEP"', deep)) + b"\n"
    path.write_bytes(b"".join(lines))
    for command in ("history", "show", "replay", "resume"):
        assert cli(command, "r").exit_code == 6, command


def test_a_long_garbage_tail_is_damage_not_a_torn_line() -> None:
    path = steps_run()
    with open(path, "ab") as f:
        f.write(b"x" * 5_000_000)
    before = path.read_bytes()
    result = cli("resume", "r")
    assert result.exit_code == 6
    assert "bytes that are no event" in result.stderr
    assert path.read_bytes() == before


def test_a_short_tail_that_is_no_event_start_is_damage() -> None:
    path = steps_run()
    with open(path, "ab") as f:
        f.write(b"rm -rf /")
    assert cli("resume", "r").exit_code == 6


# -- every field, every odd value, every command ---------------------------------------------------

ODD_VALUES: list[object] = [
    None,
    -1,
    0,
    2**64 - 1,
    1e308,
    "",
    [],
    {},
    True,
    "\x1b[2J",
    "9999-12-31T23:59:59Z",
    {"type": 1},
]


@pytest.mark.slow
def test_any_field_of_an_unfinished_run_set_to_an_odd_value_meets_every_command(
    log: Path,
) -> None:
    path = steps_run("odd")
    lines = path.read_bytes().splitlines(keepends=True)[:5]  # unfinished: resume has work
    tried = 0
    for number, line in enumerate(lines):
        event = orjson.loads(line)
        for key in [k for k in event if k != "crc"]:
            for value in ODD_VALUES:
                edited = [*lines[:number], signed({**event, key: value}), *lines[number + 1 :]]
                for command in ("show", "replay", "resume"):
                    path.write_bytes(b"".join(edited))
                    result = cli(command, "odd")  # a traceback fails the test
                    tried += 1
                    assert result.exit_code in SPEC_EXIT_CODES, (command, key, value)
    assert tried > 1000


# -- the fuzzer ---------------------------------------------------------------------------------


def _mutations(rng: random.Random) -> list[Callable[[bytes], bytes]]:
    def flip(data: bytes) -> bytes:
        out = bytearray(data)
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)

    def cut(data: bytes) -> bytes:
        return data[: rng.randrange(len(data))]

    def insert(data: bytes) -> bytes:
        at = rng.randrange(len(data))
        return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + data[at:]

    def shuffle_lines(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines)

    def duplicate_line(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        return b"".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])

    def resign_with_odd_value(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        try:
            event = orjson.loads(lines[i])
        except orjson.JSONDecodeError:
            return data  # already damaged past editing
        if not isinstance(event, dict) or len(event) < 2:
            return data
        key = rng.choice([k for k in event if k != "crc"])
        event[key] = rng.choice(
            [None, -1, 0, 2**64 - 1, 1e308, "", "x" * 300, [], {}, [[[[]]]], True, "\x1b[2J"]
        )
        lines[i] = signed(event)
        return b"".join(lines)

    def garbage_tail(data: bytes) -> bytes:
        return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))

    return [flip, cut, insert, shuffle_lines, duplicate_line, resign_with_odd_value, garbage_tail]


@pytest.mark.slow
@pytest.mark.timeout(600)  # 4,000 commands: ~90 s alone, and a loaded machine doubles that
def test_thousands_of_damaged_histories_meet_every_command_without_a_traceback(
    home: Path, log: Path
) -> None:
    original = steps_run("fuzz").read_bytes()
    rng = random.Random(20261128)
    mutations = _mutations(rng)
    path = RunStore().path("fuzz")
    tried = 0
    for _ in range(1000):
        damaged = original
        for _ in range(rng.randrange(1, 4)):
            damaged = rng.choice(mutations)(damaged) or b"\n"
        commands = [["history", "fuzz"], ["show", "fuzz"], ["list"], ["replay", "fuzz"]]
        if rng.random() < 0.25:
            commands.append(["resume", "fuzz"])
        for command in commands:
            path.write_bytes(damaged)
            result = cli(*command)  # catch_exceptions=False: a traceback fails the test
            tried += 1
            assert result.exit_code in SPEC_EXIT_CODES, (command, damaged, result.output)
            after = path.read_bytes()
            if command[0] != "resume" or result.exit_code == 6:
                assert after == damaged, (command, damaged)  # read-only, or refused
    assert tried >= 4000


# -- what is written reads back ------------------------------------------------------------------


@pytest.mark.parametrize("size", ["1e30", "11GB", "20GiB"])
def test_a_payload_limit_no_history_could_hold_is_refused(home: Path, size: str) -> None:
    result = cli("start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=1", "--max-payload", size)
    assert result.exit_code == 2, result.output
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_the_largest_limits_wfrun_accepts_are_written_in_a_history_it_reads_back(
    home: Path,
) -> None:
    result = cli(
        "start",
        f"{wf('steps')}:StepsWorkflow",
        "--arg",
        "count=1",
        "--max-payload",
        "10GB",
        "--run-id",
        "big",
    )
    assert result.exit_code == 0, result.output
    assert cli("show", "big").exit_code == 0


def test_a_timer_longer_than_a_history_records_fails_the_code_that_asked(home: Path) -> None:
    result = cli("start", f"{wf('timers')}:NapWorkflow", "--arg", "seconds=1e11", "--run-id", "t")
    assert result.exit_code == 3, result.output  # a bug in the code: the run is BLOCKED
    assert "longer than a history records" in result.stderr
    assert cli("show", "t").exit_code == 0  # and the history reads back


def test_retry_intervals_and_timeouts_longer_than_a_history_records_are_refused() -> None:
    from datetime import timedelta

    from wfrun.policy import ActivityOptions

    with pytest.raises(workflows.DefinitionError, match="317 years"):
        workflows.RetryPolicy(maximum_interval=timedelta(days=365 * 400))
    with pytest.raises(workflows.DefinitionError, match="317 years"):
        ActivityOptions(name="forever", start_to_close_timeout=timedelta(days=365 * 400))


def test_c1_and_bidi_characters_are_escaped_before_the_checksum(home: Path) -> None:
    result = cli(
        "start", f"{wf('steps')}:GreeterWorkflow", "--arg", "name=\u009b\u202e", "--run-id", "g"
    )
    assert result.exit_code == 0, result.output
    stored = (home / "runs" / "g.jsonl").read_bytes()
    assert stored.isascii()
    exported = cli("history", "g", "--json").stdout_bytes
    assert exported == stored  # exactly as stored, and safe for any terminal
    assert parse_history(home / "runs" / "g.jsonl", exported).events  # and a valid history


def test_a_first_line_without_its_checksum_or_with_another_id_is_damage(home: Path) -> None:
    path = steps_run()
    lines = path.read_bytes().splitlines(keepends=True)
    first = orjson.loads(lines[0])
    first.pop("crc")
    for edited in (
        orjson.dumps(first) + b"\n",  # format 2 without its checksum
        signed({**first, "id": 7}),
    ):
        path.write_bytes(edited + b"".join(lines[1:]))
        for command in ("history", "show", "replay"):
            assert cli(command, "r").exit_code == 6, (command, edited)


def test_a_tail_of_zeros_left_by_a_power_loss_is_the_end_of_the_file(home: Path, log: Path) -> None:
    # Reserved space (wfrun.local.store) that no event reached: no damage, nothing to repair.
    path = steps_run()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4]) + b"\0" * 4096)
    result = cli("resume", "r")
    assert result.exit_code == 0, result.output
    assert "torn" not in result.stderr
    assert path.read_bytes().startswith(b"".join(lines[:4]) + b'{"id":5,')
    assert not path.read_bytes().endswith(b"\0")
