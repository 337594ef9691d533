"""A workflow that calls its activity through code compiled afresh for each call, as a
long-running service that reloads modules (or a test suite) makes new code objects and drops
the old ones."""

from __future__ import annotations

import wfrun as workflows

HELPER = "async def helper(n):\n    return await bump(n)\n"


@workflows.activity
async def bump(n: int) -> int:
    return n + 1


@workflows.workflow.define(name="fresh_code")
class FreshCode:
    """``count`` calls of `bump`, each from a helper function compiled for that call."""

    @workflows.workflow.entrypoint
    async def run(self, count: int) -> int:
        total = 0
        for i in range(count):
            namespace = {"bump": bump}
            exec(compile(HELPER, f"<helper {i}>", "exec"), namespace)
            total += await namespace["helper"](i)
        return total
