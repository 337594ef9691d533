"""A Temporal worker that serves wfrun workflows and activities.

`build_worker` registers the one dynamic workflow class (`wfrun.temporal.workflow`) for the
given definitions and one Temporal activity per wfrun activity (by default every activity
decorated in this process: importing a workflow's module decorates the activities it uses).
`serve` runs it until it is told to stop, then drains: no new task is taken, and activities in
flight get ``drain`` seconds to finish before they are cancelled (and retried elsewhere).

Temporal's sandbox re-imports workflow code per run; wfrun passes its own modules through,
with pydantic and orjson and the modules that define the served workflows and activities:
wfrun's runtime seam, not the sandbox, is what keeps workflow code deterministic here, and a
TARGET loaded from a file cannot be imported again anyway. ``sandbox=False``
(``wfrun worker --no-sandbox``) runs workflows without Temporal's sandbox at all, for code
whose imports the sandbox refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .. import settings
from ..definitions import ActivityDefinition, WorkflowDefinition, decorated_activities
from . import TASK_QUEUE
from .activities import temporal_activity
from .registry import serve
from .workflow import WfrunWorkflow

#: How long a stopping worker lets its activities in flight finish, by default.
DRAIN: float = 10.0
#: Always passed through Temporal's sandbox: wfrun and what its payloads are made with.
_PASSED_THROUGH = (
    "wfrun",
    "pydantic",
    "pydantic_core",
    "orjson",
    "typing_extensions",
    "typing_inspection",
    "annotated_types",
)


def build_worker(
    client: Client,
    definitions: Iterable[WorkflowDefinition],
    task_queue: str = TASK_QUEUE,
    *,
    activities: Iterable[ActivityDefinition] | None = None,
    sandbox: bool = True,
    max_payload: int | None = None,
    drain: float = DRAIN,
    **options: Any,
) -> Worker:
    """A Temporal worker for ``definitions`` and ``activities`` on ``task_queue``.

    ``activities``: default, every activity decorated in this process. ``max_payload``: the
    limit on encoded inputs and results (default ``$WFRUN_MAX_PAYLOAD`` or 2 MiB). ``drain``:
    seconds that activities in flight get to finish when the worker stops. ``options`` go to
    `temporalio.worker.Worker` as they are.

    Example::

        client = await connect("127.0.0.1:7233")
        worker = build_worker(client, [load("samples/user_report.py:UserReportWorkflow")])
        async with worker:
            ...  # runs until the block ends, then drains
    """
    workflows = list(definitions)
    served = list(decorated_activities().values() if activities is None else activities)
    limit = max_payload or settings.max_payload()
    serve(task_queue, workflows, limit)
    runner: Any
    if sandbox:
        modules = {_top(d.cls.__module__) for d in workflows}
        modules |= {_top(a.fn.__module__) for a in served}
        restrictions = SandboxRestrictions.default.with_passthrough_modules(
            *_PASSED_THROUGH, *sorted(modules)
        )
        runner = SandboxedWorkflowRunner(restrictions=restrictions)
    else:
        runner = UnsandboxedWorkflowRunner()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[WfrunWorkflow],
        activities=[temporal_activity(a, max_payload=limit) for a in served],
        workflow_runner=runner,
        graceful_shutdown_timeout=timedelta(seconds=drain),
        **options,
    )


async def serve_until(worker: Worker, stop: asyncio.Event) -> None:
    """Run ``worker`` until ``stop`` is set, then drain it (see `build_worker`'s ``drain``)."""
    running = asyncio.ensure_future(worker.run())
    stopping = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if running in done:  # the worker stopped by itself: a fatal error (e.g. the cluster is gone)
        stopping.cancel()
        running.result()
        return
    await worker.shutdown()
    await running


def _top(module: str) -> str:
    return module.split(".", 1)[0]
