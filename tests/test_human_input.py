"""Human input (`InteractiveWorkflow.wait_for_input`): asked on a terminal, else a signal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from conftest import backdate, cli, history, wf

FORM = str(Path(__file__).resolve().parent.parent / "samples" / "shipping_form.py")
SHIP = f"{FORM}:ShipGift"


class Terminal:
    """``python -m wfrun ARGS`` on a real terminal, answered like a person would."""

    def __init__(self, *args: str) -> None:
        self._main, child = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wfrun", *args],
            stdin=child,
            stdout=child,
            stderr=child,
            env={**os.environ, "COLUMNS": "120"},
        )
        os.close(child)
        self.screen = b""

    def expect(self, text: str, timeout: float = 30) -> None:
        """Read until ``text`` appears after what was expected before (the bound: a hang)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            ready, _, _ = select.select([self._main], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                pytest.fail(f"{text!r} never appeared; the terminal shows {self.screen!r}")
            self.screen += self._read()
        self.screen = self.screen[self.screen.index(text.encode()) + len(text) :]

    def type(self, line: str) -> None:
        os.write(self._main, line.encode() + b"\r")

    def finish(self) -> tuple[int, bytes]:
        rest = b""
        while chunk := self._read():
            rest += chunk
        code = self.process.wait(timeout=30)
        os.close(self._main)
        return code, self.screen + rest

    def _read(self) -> bytes:
        try:
            return os.read(self._main, 4096)
        except OSError:  # the terminal closed: the process ended
            return b""


def test_on_a_terminal_the_form_is_asked_field_by_field(home: Path) -> None:
    terminal = Terminal("start", SHIP, "--arg", "gift=teapot", "--run-id", "g")
    terminal.expect("address")
    terminal.expect("name")
    terminal.type("Ada")
    terminal.expect("city")
    terminal.type("London")
    terminal.expect("express")
    terminal.type("true")
    code, screen = terminal.finish()
    assert code == 0, screen
    assert b"teapot sent to Ada in London (express)" in screen
    [received] = [e for e in history(home, "g") if e["type"] == "SignalReceived"]
    assert received["input"] == {"name": "Ada", "city": "London", "express": True}


def test_an_answer_that_does_not_validate_is_asked_again(home: Path) -> None:
    terminal = Terminal("start", SHIP, "--arg", "gift=vase", "--run-id", "g")
    terminal.expect("name")
    terminal.type("Bob")
    terminal.expect("city")
    terminal.type("Paris")
    terminal.expect("express")
    terminal.type("maybe")
    terminal.expect("express: Input should be a valid boolean")
    terminal.expect("express")  # asked again, and only that field
    terminal.type("no")
    code, screen = terminal.finish()
    assert code == 0, screen
    assert b"vase sent to Bob in Paris (standard)" in screen
    assert b"name" not in screen.split(b"valid boolean")[-1]


def test_without_a_terminal_the_run_waits_for_its_input(home: Path) -> None:
    result = cli("start", SHIP, "--arg", "gift=teapot", "--run-id", "g")
    assert result.exit_code == 75, result.output
    assert "waits for input 'address'" in result.stderr
    assert history(home, "g")[-1]["type"] == "RunWaiting"


def test_a_signal_named_after_the_label_supplies_the_input(home: Path) -> None:
    cli("start", SHIP, "--arg", "gift=teapot", "--run-id", "g")
    sent = cli("signal", "g", "address", '{"name": "Ada", "city": "London"}')
    assert sent.exit_code == 0, sent.output
    assert orjson.loads(sent.stdout) == "teapot sent to Ada in London (standard)"


def test_input_that_does_not_fit_the_schema_is_refused_and_changes_nothing(home: Path) -> None:
    cli("start", SHIP, "--arg", "gift=teapot", "--run-id", "g")
    before = (home / "runs" / "g.jsonl").read_bytes()
    refused = cli("signal", "g", "address", '{"name": "Ada", "city": 3}')
    assert refused.exit_code == 2
    assert "input 'address' refused" in refused.stderr
    assert "city" in refused.stderr
    assert not (home / "inbox" / "g.jsonl").exists()
    assert (home / "runs" / "g.jsonl").read_bytes() == before


def test_a_label_the_run_does_not_wait_for_is_refused_naming_those_it_does(home: Path) -> None:
    cli("start", SHIP, "--arg", "gift=teapot", "--run-id", "g")
    refused = cli("signal", "g", "adress", "{}")
    assert refused.exit_code == 2
    assert "it defines no signals, and waits for input 'address'" in refused.stderr


def test_the_input_replays_where_it_was_received(home: Path) -> None:
    cli("start", SHIP, "--arg", "gift=teapot", "--run-id", "g")
    cli("signal", "g", "address", '{"name": "Ada", "city": "London"}')
    assert cli("replay", "g").exit_code == 0


def test_the_label_defaults_to_the_schema_name(home: Path) -> None:
    cli("start", f"{wf('forms')}:ConfirmOrGiveUp", "--run-id", "c")
    sent = cli("signal", "c", "Confirmation", '{"ok": true}')
    assert orjson.loads(sent.stdout) == "confirmed"


def test_an_input_not_given_in_time_raises_timeout_error(home: Path) -> None:
    waiting = cli("start", f"{wf('forms')}:ConfirmOrGiveUp", "--run-id", "c")
    assert waiting.exit_code == 75, waiting.output
    assert history(home, "c")[-1]["until"] is not None  # the timeout is a durable timer
    backdate("c", 3600)
    resumed = cli("resume", "c")
    assert orjson.loads(resumed.stdout) == "nobody answered"


FORMS = wf("forms")


def test_an_input_with_a_timeout_is_asked_on_the_terminal(home: Path) -> None:
    # The timeout (50 s) is within --max-wait (60 s): the process waits for it, and meanwhile
    # the person at the terminal must be asked.
    terminal = Terminal("start", f"{FORMS}:TimedForm", "--run-id", "t")
    try:
        terminal.expect("name")
        terminal.type("Ada")
        code, screen = terminal.finish()
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.process.wait()
    assert code == 0, screen
    assert b"hello Ada" in screen


def test_an_input_answered_by_a_signal_while_asked_lets_the_run_wait(home: Path) -> None:
    terminal = Terminal("start", f"{FORMS}:FormThenSleep", "--run-id", "s")
    try:
        terminal.expect("name")  # the form is open on the terminal
        sent = cli("signal", "s", "who", '{"name": "Ada"}')
        assert sent.exit_code == 0, sent.output
        # Answered: the run now waits an hour, past --max-wait, so the process stops WAITING,
        # rather than holding on to a form nobody needs any more.
        code, screen = terminal.finish()
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.process.wait()
    assert code == 75, screen
    assert history(home, "s")[-1]["type"] == "RunWaiting"
