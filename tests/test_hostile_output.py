"""Everything from a history or a user's value is printed as text, in every command and mode.

No terminal escape sequence (ESC, an 8-bit CSI, BEL, a bidirectional override) from a file or
a value reaches the terminal as such, and rich markup in a name or a message is shown, never
obeyed (``[/bold]`` once crashed ``show``).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from conftest import cli, through_a_pty, wf
from flows.hostile import NASTY

HOSTILE = f"{wf('hostile')}:HostileWorkflow"
RAW = ["\x1b", "\x07", "\u009b", "\u202e"]


@pytest.fixture
def hostile_run() -> str:
    result = cli("start", HOSTILE, "--arg", f"value={NASTY}", "--run-id", "evil")
    assert result.exit_code == 1, result.output
    for raw in RAW:
        assert raw not in result.stderr
    return "evil"


@pytest.mark.parametrize(
    "command",
    [
        ["history", "evil"],
        ["history", "evil", "--json"],
        ["show", "evil"],
        ["show", "evil", "--json"],
        ["list"],
        ["list", "--json"],
        ["resume", "evil"],
        ["resume", "evil", "--json"],
    ],
    ids=" ".join,
)
def test_no_escape_sequence_from_a_history_reaches_the_terminal(
    hostile_run: str, command: list[str]
) -> None:
    result = cli(*command)
    assert result.exit_code in (0, 1), result.output
    for stream in (result.stdout, result.stderr):
        for raw in RAW:
            assert raw not in stream, (command, raw)


def test_markup_in_a_message_is_shown_as_written(hostile_run: str) -> None:
    shown = cli("show", "evil").stdout
    assert "[/bold][link=x]:warning:" in shown
    assert "\\x1b[2J" in shown  # the escape is visible, as text


def test_json_output_keeps_the_values_exactly(hostile_run: str) -> None:
    summary = orjson.loads(cli("show", "evil", "--json").stdout)
    assert summary["workflow"] == f"wf{NASTY}"
    assert summary["input"] == {"value": NASTY}


@pytest.mark.slow
@pytest.mark.parametrize("command", [["start"], ["history", "evil"], ["show", "evil"], ["list"]])
def test_on_a_real_terminal_nothing_hostile_is_obeyed_either(
    home: Path, command: list[str]
) -> None:
    """Through a pty: rich draws its own colours and the live view, but nothing from the run."""
    if command == ["start"]:
        command = ["start", HOSTILE, "--arg", f"value={NASTY}", "--run-id", "evil"]
    else:
        cli("start", HOSTILE, "--arg", f"value={NASTY}", "--run-id", "evil")
    _, output = through_a_pty(command)
    for raw in (b"\x1b[2J", b"\x1b]52", b"\x07", "\u009b".encode(), "\u202e".encode()):
        assert raw not in output, (command, raw)
