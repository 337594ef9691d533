"""The one Temporal workflow class that runs every wfrun workflow.

Temporal wants a module-level class per workflow type, and refuses ``@workflow.run`` on a
class made inside a function; a TARGET loaded from a file has a module name that Temporal's
sandbox cannot import again. So wfrun registers one *dynamic* workflow, `WfrunWorkflow`, which
serves every type: it looks the type name up among the definitions its worker serves (by task
queue, so that workers of one process on different queues keep apart) and hands the run to a
`TemporalRuntime`. Signals, queries and updates arrive through its dynamic handlers.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow
from temporalio.common import RawValue

from .registry import lookup, served
from .runtime import TemporalRuntime


@workflow.defn(dynamic=True)
class WfrunWorkflow:
    """Every wfrun workflow on Temporal; the type name says which."""

    def __init__(self) -> None:
        info = workflow.info()
        entry = lookup(info.task_queue, info.workflow_type)
        if entry is None:
            # A bug of deployment, not of the run: the task fails and is retried, so a worker
            # that serves the type (or this one, once restarted with it) carries the run on.
            names = ", ".join(repr(n) for n in served(info.task_queue)) or "none"
            raise RuntimeError(
                f"this worker does not serve workflow {info.workflow_type!r} on task queue "
                f"{info.task_queue!r} (it serves: {names}); start a worker with its TARGET"
            )
        definition, max_payload = entry
        self._runtime = TemporalRuntime(definition, max_payload=max_payload)

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> RawValue:
        return await self._runtime.run(args)

    @workflow.signal(dynamic=True)
    async def signal(self, name: str, args: Sequence[RawValue]) -> None:
        await self._runtime.signal(name, args)

    @workflow.query(dynamic=True)
    def query(self, name: str, args: Sequence[RawValue]) -> RawValue:
        return self._runtime.query(name, args)

    @workflow.update(dynamic=True)
    async def update(self, name: str, args: Sequence[RawValue]) -> RawValue:
        return await self._runtime.update(name, args)

    @update.validator
    def validate_update(self, name: str, args: Sequence[RawValue]) -> None:
        self._runtime.validate_update(name, args)
