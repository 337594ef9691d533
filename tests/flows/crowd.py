"""Many runs at once in one process, as a service taking many requests would start them:

    python crowd.py RUNS STEPS PREFIX

``RUNS`` runs of `StepsWorkflow` (``STEPS`` steps each, ids ``PREFIX0``, ``PREFIX1``, ...),
started together with ``asyncio.gather`` (for the crash tests of a crowd: kill it, resume).
"""

from __future__ import annotations

import asyncio
import sys

import wfrun as workflows

from flows.steps import StepsWorkflow


async def crowd(runs: int, steps: int, prefix: str) -> None:
    await asyncio.gather(
        *(
            workflows.execute_workflow(StepsWorkflow, {"count": steps}, execution_id=f"{prefix}{i}")
            for i in range(runs)
        )
    )


if __name__ == "__main__":
    asyncio.run(crowd(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
