"""Replay compares a call's plain arguments with the recorded ones as values, without encoding
them, and only where the encoding could not have refused them: anything it might refuse (an
int JSON cannot hold, an input over the payload limit) is encoded, and refused as live."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import wfrun as workflows
from wfrun.errors import NonDeterminismError
from wfrun.local import instance
from wfrun.payload import Signature, encode_arguments
from wfrun.testing import replay

from conftest import run_live, signed

#: What `TakesWorkflow` passes to its activity; a test changes it between record and replay.
ARGUMENT: Any = 0


@workflows.activity
async def take(value: Any) -> int:
    return 1


@workflows.activity
async def take_text(text: str, number: int) -> int:
    return len(text) + number


@workflows.workflow.define(name="replayed_arguments_takes")
class TakesWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for _ in range(steps):
            total += await take(sys.modules[__name__].ARGUMENT)
        return total


@workflows.workflow.define(name="replayed_arguments_texts")
class TextsWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await take_text("x" * 100, i)
        return total


def rewrite_line(path: Path, number: int, change: dict[str, object]) -> None:
    """Edit one event and sign it again: the history is valid, but disagrees with the code."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = signed({**orjson.loads(lines[number - 1]), **change})
    path.write_bytes(b"".join(lines))


def count_encodings(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    made: list[bytes] = []

    def counted(arguments: Any, *, subject: str) -> bytes:
        made.append(data := encode_arguments(arguments, subject=subject))
        return data

    monkeypatch.setattr(instance, "encode_arguments", counted)
    return made


def replayed(signature: Signature, args: tuple[Any, ...], limit: int) -> Any:
    """What `Signature.replayed_arguments` gives once `unchanged_input` was first asked."""
    signature.unchanged_input({})
    return signature.replayed_arguments(args, {}, limit)


def one(value: Any, text: str) -> None:
    pass


def typed(value: int, text: str) -> None:
    pass


def ratio(value: float, text: str) -> None:
    pass


@pytest.mark.usefixtures("isolated")
def test_a_replayed_call_with_plain_arguments_is_compared_without_encoding_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = run_live(TextsWorkflow, "plain", {"steps": 5})
    made = count_encodings(monkeypatch)
    assert replay(path, TextsWorkflow).finished  # the result checked against the recorded one
    assert made == []  # the live run read the annotations already: no call encodes


@pytest.mark.usefixtures("isolated")
def test_a_changed_plain_argument_is_refused_at_its_step() -> None:
    path = run_live(TextsWorkflow, "changed", {"steps": 3})
    rewrite_line(path, 5, {"input": {"text": "x" * 100, "number": 7}})  # step 2's scheduled
    with pytest.raises(NonDeterminismError) as caught:
        replay(path, TextsWorkflow)
    assert caught.value.event_id == 5
    # The value the history holds and the one the code gave, each as the ordinary path says it.
    assert caught.value.recorded == 'activity take_text(text="' + "x" * 38 + "…, number=7)"
    assert caught.value.requested == 'activity take_text(text="' + "x" * 38 + "…, number=1)"


@pytest.mark.usefixtures("isolated")
def test_an_int_json_cannot_hold_is_refused_on_replay_even_where_it_equals_the_recorded_float(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ARGUMENT", float(2**64))
    path = run_live(TakesWorkflow, "big", {"steps": 2})
    # Equal as values (the float is exactly 2**64), but no encoding holds the int: a live
    # call fails, so the replay must not go on.
    monkeypatch.setattr(sys.modules[__name__], "ARGUMENT", 2**64)
    assert float(2**64) == 2**64
    with pytest.raises(NonDeterminismError):
        replay(path, TakesWorkflow)


@pytest.mark.usefixtures("isolated")
def test_an_input_over_the_run_s_payload_limit_is_refused_on_replay() -> None:
    path = run_live(TextsWorkflow, "limit", {"steps": 2})
    # A run started under a limit its inputs exceed: a live call would be refused.
    rewrite_line(path, 1, {"max_payload": 60})
    with pytest.raises(NonDeterminismError):
        replay(path, TextsWorkflow)


@pytest.mark.parametrize("fn", [one, typed])
@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 2**100])
def test_replayed_arguments_leave_an_int_json_cannot_hold_to_the_encoding(
    fn: Any, number: int
) -> None:
    assert replayed(Signature(fn, owner="fn"), (number, "t"), 10**6) is None


@pytest.mark.parametrize("fn", [one, typed])
@pytest.mark.parametrize("number", [2**64 - 1, -(2**63), 0])
def test_replayed_arguments_give_an_int_json_holds(fn: Any, number: int) -> None:
    orjson.dumps(number)  # the encoding takes it
    arguments = replayed(Signature(fn, owner="fn"), (number, "t"), 10**6)
    assert arguments == {"value": number, "text": "t"}


@pytest.mark.parametrize("fn", [one, ratio])
@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_replayed_arguments_leave_a_float_json_cannot_hold_to_the_encoding(
    fn: Any, number: float
) -> None:
    assert replayed(Signature(fn, owner="fn"), (number, "t"), 10**6) is None


@pytest.mark.parametrize(
    "text", ["", "t", "x" * 50, "\x00" * 20, '"\\' * 10, "é" * 15, "\U0001f600" * 12, "\u2028"]
)
@pytest.mark.parametrize("value", [None, True, 2**64 - 1, -(2**63), -1.7976931348623157e308, "é"])
def test_replayed_arguments_are_given_only_where_their_encoding_fits_the_limit(
    text: str, value: object
) -> None:
    signature = Signature(one, owner="one")
    size = len(encode_arguments({"value": value, "text": text}, subject="one"))
    given = [
        limit
        for limit in range(1, size + 400)
        if replayed(signature, (value, text), limit) is not None
    ]
    assert given  # a limit that surely holds the encoding takes the fast way
    assert min(given) >= size  # never one that the encoding exceeds


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("today", [1.0, True])
def test_a_plain_argument_equal_to_the_recorded_one_as_a_value_replays_whatever_its_bytes(
    monkeypatch: pytest.MonkeyPatch, today: object
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ARGUMENT", 1)
    path = run_live(TakesWorkflow, f"equal-{today}", {"steps": 2})
    # Encoded as 1.0 or true, not as the recorded 1: compared as values, as the ordinary
    # path compares them (`replay._same`), they agree.
    monkeypatch.setattr(sys.modules[__name__], "ARGUMENT", today)
    made = count_encodings(monkeypatch)
    assert replay(path, TakesWorkflow).finished
    assert made == []  # and on the fast path, not encoded


class _HashRaises(type):
    """A metaclass whose classes cannot be hashed, and say so by other means than TypeError."""

    def __hash__(cls) -> int:
        raise RuntimeError("no hash")


class Unhashed(metaclass=_HashRaises):
    pass


@workflows.workflow.define(name="replayed_arguments_unhashed")
class UnhashedWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        await take(1)  # the activity's argument tests are made by now, live and on replay
        with contextlib.suppress(RuntimeError):
            await take(Unhashed())
        # The call refused above took a future's key, as live: later hashes are the same.
        return await take(hash(asyncio.get_running_loop().create_future()))


@pytest.mark.usefixtures("isolated")
def test_an_argument_whose_type_test_raises_leaves_later_future_hashes_as_live() -> None:
    path = run_live(UnhashedWorkflow, "unhashed")
    assert replay(path, UnhashedWorkflow).finished
