"""Activities whose arguments and results must reach their callers as their annotations say,
whether or not wfrun skips decoding values that come back from JSON unchanged."""

from __future__ import annotations

from typing import Any

import wfrun as workflows


@workflows.activity
async def echo_types(number: float, anything: Any, flag: bool, text: str) -> list[str]:
    return [type(v).__name__ for v in (number, anything, flag, text)]


@workflows.activity
async def gives_an_int_for_a_float() -> float:
    return 3  # an int: the caller gets 3.0, as the annotation says


@workflows.activity
async def gives_a_tuple() -> Any:
    return (1, 2)  # a tuple: the caller gets [1, 2], as it would after a replay


@workflows.workflow.define(name="values")
class ValuesWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, number: int) -> dict[str, Any]:
        converted = await echo_types(number, (number, "x"), True, "t")
        plain = await echo_types(1.5, number, False, "u")
        widened = await gives_an_int_for_a_float()
        listed = await gives_a_tuple()
        return {
            "converted": converted,
            "plain": plain,
            "widened": [widened, type(widened).__name__],
            "listed": [listed, type(listed).__name__],
        }
