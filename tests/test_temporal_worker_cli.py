"""``wfrun worker`` as a real process: what it says, how it stops, and a kill -9 mid-run."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal extra is not installed")

from temporalio.common import RawValue

from wfrun.payload import encode, loads
from wfrun.temporal.connect import connect
from wfrun.temporal.converter import payload

from conftest import attempts, hold, kill_after_marker, release, run_wfrun, spawn_wfrun, wf

#: No Temporal settings at all: neither variables nor a config file to find.
NO_CLUSTER = {
    "WFRUN_TEMPORAL": "",
    "TEMPORAL_ADDRESS": "",
    "TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml",
}
STEPS = f"{wf('cluster')}:StepsOnCluster"


def start_run(address: str, queue: str, name: str, arguments: dict[str, Any]) -> str:
    run_id = f"{name}-{uuid.uuid4().hex[:8]}"

    async def start() -> None:
        client = await connect(address)
        data = encode(arguments, subject="test input")
        await client.start_workflow(name, payload(data), id=run_id, task_queue=queue)

    asyncio.run(start())
    return run_id


def result_of(address: str, run_id: str) -> Any:
    async def result() -> Any:
        client = await connect(address)
        handle = client.get_workflow_handle(run_id, result_type=RawValue)
        raw = await asyncio.wait_for(handle.result(), timeout=120)
        return loads(raw.payload.data)

    return asyncio.run(result())


def worker(address: str, queue: str, env: dict[str, str] | None = None) -> Any:
    return spawn_wfrun("worker", STEPS, "--temporal", address, "--task-queue", queue, env=env)


def test_a_worker_without_a_cluster_address_says_how_to_give_one() -> None:
    result = run_wfrun("worker", STEPS, env=NO_CLUSTER)
    assert result.returncode == 2
    assert "--temporal HOST:PORT" in result.stderr
    assert "WFRUN_TEMPORAL" in result.stderr


def test_a_worker_with_a_bad_target_exits_2_naming_it() -> None:
    result = run_wfrun("worker", "no_such_module:Workflow", "--temporal", "127.0.0.1:1")
    assert result.returncode == 2
    assert "no_such_module" in result.stderr


def test_a_worker_that_cannot_reach_its_cluster_exits_74() -> None:
    from temporal_server import free_port

    result = run_wfrun("worker", STEPS, "--temporal", f"127.0.0.1:{free_port()}")
    assert result.returncode == 74
    assert "cannot reach the Temporal cluster" in result.stderr


@pytest.mark.slow
def test_sigterm_drains_the_activity_in_flight_and_exits_0(temporal_server: str, log: Path) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    first = worker(temporal_server, queue, env=hold("slow1"))
    run_id = start_run(temporal_server, queue, "t_steps", {"count": 1})
    from conftest import wait_for_marker

    wait_for_marker(first, log, "slow1")
    first.send_signal(signal.SIGTERM)
    release(log, "slow1")  # the attempt in flight finishes during the drain
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "worker serving t_steps" in err
    assert f"task queue '{queue}'" in err
    assert "draining" in err
    second = worker(temporal_server, queue)
    try:
        assert result_of(temporal_server, run_id) == [10]
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
    assert attempts(log, "slow1") == 1  # drained, not retried


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_run_a_new_worker_finishes_it_running_no_completed_step_again(
    temporal_server: str, log: Path
) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    first = worker(temporal_server, queue, env=hold("slow2"))
    run_id = start_run(temporal_server, queue, "t_steps", {"count": 3})
    kill_after_marker(first, log, "slow2")  # step 1 completed, step 2 in flight
    assert first.returncode == -signal.SIGKILL
    second = worker(temporal_server, queue)
    try:
        assert result_of(temporal_server, run_id) == [10, 20, 30]
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
    assert attempts(log, "slow1") == 1  # completed before the kill: never again
    assert attempts(log, "slow2") == 2  # in flight at the kill: retried by the new worker
    assert attempts(log, "slow3") == 1


def test_the_worker_command_is_documented_with_a_runnable_example() -> None:
    result = run_wfrun("worker", "--help")
    assert result.returncode == 0
    assert "wfrun worker samples/user_report.py:UserReportWorkflow --temporal" in " ".join(
        result.stdout.split()
    )
