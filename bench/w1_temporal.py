"""W1 (sequential no-op activities) twice for Temporal: native temporalio code, and the same
workflow written with wfrun, for `temporal_overhead.py`. A module of its own: Temporal's
sandbox imports a native workflow's module again, which a script run as ``__main__`` cannot be.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

import wfrun as workflows


@activity.defn(name="native_noop")
async def native_noop(i: int) -> int:
    return i


@workflow.defn(name="w1_native")
class NativeSequential:
    @workflow.run
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await workflow.execute_activity(
                native_noop, i, start_to_close_timeout=timedelta(seconds=30)
            )
        return total


@workflows.activity(start_to_close_timeout=timedelta(seconds=30))
async def noop(i: int) -> int:
    return i


@workflows.workflow.define(name="w1_wfrun")
class WfrunSequential:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await noop(i)
        return total


@workflows.workflow.define(name="w1_empty")
class Empty:
    """No step at all: the first workflow a cold worker completes."""

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        return 1
