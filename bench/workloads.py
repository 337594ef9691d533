"""The workflows the benchmarks run: importable as ``workloads`` from this folder, so that a
fabricated history's target (``workloads:Sequential``) resolves for ``wfrun resume``/``replay``."""

from __future__ import annotations

import asyncio

import wfrun as workflows


@workflows.activity
async def noop(i: int) -> int:
    return i


@workflows.workflow.define(name="bench_sequential")
class Sequential:
    """W1: ``steps`` durable steps, one after the other."""

    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await noop(i)
        return total


@workflows.workflow.define(name="bench_unguarded", determinism_warnings=False)
class Unguarded(Sequential):
    """W1 without the determinism guard: what the guard costs is the difference."""


@workflows.workflow.define(name="bench_fan_out")
class FanOut:
    """W2: ``steps`` durable steps at once, gathered."""

    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        return sum(await asyncio.gather(*(noop(i) for i in range(steps))))
