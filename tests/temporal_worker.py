"""An in-process wfrun worker for the Temporal tests, on a loop of its own.

One per test module (`InProcessWorker` in a module-scoped fixture): a worker takes a second or
so to start polling, and every test of a module can share it. Tests hand coroutines to its
loop with `run` and get their result; the client is the worker's own, so that payloads go
through wfrun's converter both ways.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import RawValue

from wfrun.definitions import WorkflowDefinition
from wfrun.payload import encode, loads
from wfrun.temporal.connect import connect
from wfrun.temporal.converter import payload
from wfrun.temporal.worker import build_worker

T = TypeVar("T")


class InProcessWorker:
    """A worker serving ``definitions`` on a task queue of its own, until `stop`."""

    def __init__(
        self, address: str, definitions: Iterable[WorkflowDefinition], *, sandbox: bool = True
    ) -> None:
        self._sandbox = sandbox
        self.task_queue = f"tq-{uuid.uuid4().hex[:8]}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._stop = asyncio.Event()
        self.client: Client = self.run(lambda: connect(address))
        self._ready: Future[None] = Future()
        self._running = asyncio.run_coroutine_threadsafe(self._serve(list(definitions)), self._loop)
        self._ready.result(timeout=60)

    async def _serve(self, definitions: list[WorkflowDefinition]) -> None:
        # Built on the loop that runs it: the worker binds to the running loop.
        async with build_worker(self.client, definitions, self.task_queue, sandbox=self._sandbox):
            self._ready.set_result(None)
            await self._stop.wait()

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 60) -> T:
        """Run ``make()`` on the worker's loop and return its result."""

        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=timeout)

    def start(self, name: str, arguments: dict[str, Any] | None = None) -> WorkflowHandle[Any, Any]:
        """Start workflow ``name`` with ``arguments`` (by name) under a fresh run id."""
        data = encode(arguments or {}, subject="test input")
        run_id = f"{name}-{uuid.uuid4().hex[:8]}"
        return self.run(
            lambda: self.client.start_workflow(
                name, payload(data), id=run_id, task_queue=self.task_queue, result_type=RawValue
            )
        )

    def result(self, handle: WorkflowHandle[Any, Any]) -> Any:
        """The decoded result of a run (raises what Temporal's client raises)."""
        raw: RawValue = self.run(handle.result)
        return loads(raw.payload.data)

    def execute(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return self.result(self.start(name, arguments))

    def first_task_failure(self, handle: WorkflowHandle[Any, Any]) -> str:
        """The message of the run's first failed workflow task (waits for one)."""
        from temporalio.api.enums.v1 import EventType

        async def first() -> str:
            async for event in handle.fetch_history_events(wait_new_event=True):
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    return str(event.workflow_task_failed_event_attributes.failure.message)
            return ""

        return self.run(first)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._running.result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
