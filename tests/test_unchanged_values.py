"""Values that decode to themselves skip the decoding, and nothing else does.

A live call hands an activity the values its encoding decodes to, and a workflow the result
as its annotation types it, exactly as a replay would. For plain values of the exact type the
annotation names this is the value itself, and wfrun skips the decoding (most of a no-op
step's cost); every other value must still be decoded: these tests pin down where the line is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field

import wfrun as workflows
from wfrun.errors import EncodingError
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


def bound_if_plain(signature: Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What `Signature.plain_arguments` gives once `unchanged_input` was first asked."""
    signature.unchanged_input({})
    return signature.plain_arguments(args, kwargs)


def test_plain_values_passed_by_position_are_bound_at_once() -> None:
    bound = bound_if_plain(Signature(one, owner="one"), tuple(PLAIN.values()), {})
    assert bound == PLAIN
    assert list(bound) == list(PLAIN)  # in the parameters' order, as `bind` gives them


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("number", True),
        ("number", 1.0),
        ("ratio", 1),
        ("ratio", math.inf),
        ("ratio", -math.inf),
        ("ratio", math.nan),
        ("text", b"t"),
        ("anything", (1, 2)),
        ("anything", [1]),
        ("anything", {"a": 1}),
    ],
)
def test_plain_arguments_refuses_what_unchanged_input_refuses(name: str, value: object) -> None:
    arguments = {**PLAIN, name: value}
    assert bound_if_plain(Signature(one, owner="one"), tuple(arguments.values()), {}) is None


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1, "t", True, 0.5, None), {"anything": "x"}),  # a keyword: bound the long way
        ((1, "t", True, 0.5, None), {}),  # one missing: `bind` says what
        ((1, "t", True, 0.5, None, "x", 2), {}),  # one too many
        ((1, "t", True, 0.5, None, "x"), {"anything": "y"}),  # one twice: `bind` refuses it
    ],
)
def test_arguments_not_passed_one_per_parameter_by_position_are_left_to_bind(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert bound_if_plain(Signature(one, owner="one"), args, kwargs) is None


def test_plain_arguments_binds_nothing_before_unchanged_input_read_the_annotations() -> None:
    # Reading them may raise (a name they use is gone): that is for `unchanged_input` to say.
    assert Signature(one, owner="one").plain_arguments(tuple(PLAIN.values()), {}) is None


def test_plain_arguments_never_binds_for_a_parameter_that_is_decoded() -> None:
    assert bound_if_plain(Signature(constrained, owner="c"), (1,), {}) is None
    assert bound_if_plain(Signature(defaulted, owner="d"), (1,), {}) is None


class _EqualityOnly(type):
    """A metaclass with ``__eq__`` and no ``__hash__``: Python makes its classes unhashable,
    so ``type(value) in some_set`` raises TypeError for their values."""

    def __eq__(cls, other: object) -> bool:
        return cls is other


class Unencodable(metaclass=_EqualityOnly):
    """No JSON: the encoding refuses it, as any other object it does not know."""


@dataclasses.dataclass
class Point(metaclass=_EqualityOnly):
    """JSON, as every dataclass: an object that decodes to a dict under ``Any``."""

    x: int


def pointed(point: Point) -> Point:
    return point


def test_plain_arguments_leaves_a_value_whose_class_cannot_be_hashed_to_bind() -> None:
    arguments = {**PLAIN, "anything": Unencodable()}
    assert bound_if_plain(Signature(one, owner="one"), tuple(arguments.values()), {}) is None


def test_an_argument_whose_class_cannot_be_hashed_is_decoded() -> None:
    assert not SIGNATURE.unchanged_input({**PLAIN, "anything": Point(1)})


def test_a_result_whose_class_cannot_be_hashed_is_decoded() -> None:
    assert not Signature(one, owner="one").unchanged_result(Point(1))  # -> None


def test_an_annotation_whose_class_cannot_be_hashed_is_decoded() -> None:
    assert not Signature(pointed, owner="p").unchanged_input({"point": Point(1)})
    assert not Signature(pointed, owner="p").unchanged_result(Point(1))


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


@workflows.activity(name="uv_hashless_int")
async def hashless_int(value: int) -> int:
    return value


@workflows.activity(name="uv_hashless_any")
async def hashless_any(value: Any) -> Any:
    return value


@workflows.activity(name="uv_hashless_result")
async def hashless_result() -> Any:
    return Point(2)


@workflows.workflow.define(name="uv_hashless")
class HashlessWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, call: str) -> Any:
        if call == "unencodable":
            await hashless_int(1)  # a plain call first: the annotations are read
            try:
                return await hashless_int(Unencodable())  # type: ignore[arg-type]
            except EncodingError as exc:
                return f"refused: {type(exc).__name__}"
        if call == "argument":
            return await hashless_any(Point(1))
        return await hashless_result()


def test_an_unencodable_argument_whose_class_cannot_be_hashed_is_refused_as_unencodable() -> None:
    result = asyncio.run(workflows.execute_workflow(HashlessWorkflow, {"call": "unencodable"}))
    assert result == "refused: EncodingError"


def test_an_argument_whose_class_cannot_be_hashed_reaches_the_activity_decoded() -> None:
    result = asyncio.run(workflows.execute_workflow(HashlessWorkflow, {"call": "argument"}))
    assert result == {"x": 1}


def test_a_result_whose_class_cannot_be_hashed_reaches_the_workflow_decoded() -> None:
    result = asyncio.run(workflows.execute_workflow(HashlessWorkflow, {"call": "result"}))
    assert result == {"x": 2}
