"""Workflows for the fault tests: results big enough to fill a small disk."""

from __future__ import annotations

import wfrun as workflows

from flows.steps import log_attempt


@workflows.activity
async def big(n: int) -> str:
    log_attempt(f"big{n}")
    return str(n) * 12_000


@workflows.workflow.define(name="big_results")
class BigResultsWorkflow:
    """``count`` steps of 12 kB results each: a 64 kB disk is full before the fifth."""

    @workflows.workflow.entrypoint
    async def run(self, count: int) -> list[int]:
        return [len(await big(n)) for n in range(1, count + 1)]
