"""Values that decode to themselves skip the decoding, and nothing else does.

A live call hands an activity the values its encoding decodes to, and a workflow the result
as its annotation types it, exactly as a replay would. For plain values of the exact type the
annotation names this is the value itself, and wfrun skips the decoding (most of a no-op
step's cost); every other value must still be decoded: these tests pin down where the line is.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field

import wfrun as workflows
from wfrun.payload import Signature

from flows.values import ValuesWorkflow


def one(number: int, text: str, flag: bool, ratio: float, nothing: None, anything: Any) -> None:
    pass


def constrained(number: Annotated[int, Field(gt=0)]) -> Annotated[int, Field(gt=0)]:
    return number


def defaulted(number: int, *, keyword: int = 1) -> int:
    return number


SIGNATURE = Signature(one, owner="one")
PLAIN = {"number": 1, "text": "t", "flag": True, "ratio": 0.5, "nothing": None, "anything": "x"}


def test_plain_values_of_their_annotations_exact_types_pass_unchanged() -> None:
    assert SIGNATURE.unchanged_input(PLAIN)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("number", True),  # a bool is no int to JSON: decoded
        ("number", 1.0),
        ("ratio", 1),  # an int for a float: decoded to 1.0
        ("ratio", math.inf),  # not JSON: the encoding writes null
        ("ratio", math.nan),
        ("text", b"t"),
        ("anything", (1, 2)),  # a tuple for Any comes back a list
        ("anything", [1]),  # containers are decoded, whatever they hold
        ("anything", {"a": 1}),
    ],
)
def test_any_other_value_is_decoded(name: str, value: object) -> None:
    assert not SIGNATURE.unchanged_input({**PLAIN, name: value})


def test_a_constrained_annotation_is_always_decoded() -> None:
    assert not Signature(constrained, owner="c").unchanged_input({"number": 1})
    assert not Signature(constrained, owner="c").unchanged_result(1)


def test_keyword_only_parameters_are_always_decoded() -> None:
    assert not Signature(defaulted, owner="d").unchanged_input({"number": 1, "keyword": 2})


def test_a_missing_argument_is_decoded() -> None:
    assert not SIGNATURE.unchanged_input({k: v for k, v in PLAIN.items() if k != "text"})


def test_a_result_passes_unchanged_only_as_its_annotation_s_exact_type() -> None:
    assert Signature(defaulted, owner="d").unchanged_result(1)
    assert not Signature(defaulted, owner="d").unchanged_result(True)
    assert not Signature(defaulted, owner="d").unchanged_result(1.0)
    assert Signature(one, owner="one").unchanged_result(None)  # -> None


def test_activities_get_and_give_values_as_their_annotations_type_them(log: Path) -> None:
    result = asyncio.run(workflows.execute_workflow(ValuesWorkflow, {"number": 2}))
    assert result == {
        "converted": ["float", "list", "bool", "str"],
        "plain": ["float", "int", "bool", "str"],
        "widened": [3.0, "float"],
        "listed": [[1, 2], "list"],
    }
