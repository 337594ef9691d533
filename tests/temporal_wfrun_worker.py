"""wfrun's own worker in a process of its own, for the client's end-to-end tests.

``python tests/temporal_wfrun_worker.py ADDRESS TASK_QUEUE READY_FILE TARGET...`` serves the
TARGETs' workflows (and every activity their modules decorate) through
`wfrun.temporal.worker.build_worker`, writes READY_FILE once it polls, and runs until it is
terminated. It stands for ``wfrun worker TARGET... --temporal ADDRESS --task-queue QUEUE``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from wfrun.loader import load
from wfrun.temporal.connect import connect
from wfrun.temporal.worker import build_worker


async def serve(address: str, task_queue: str, ready: Path, targets: list[str]) -> None:
    definitions = [load(target) for target in targets]
    client = await connect(address)
    async with build_worker(client, definitions, task_queue):
        ready.write_text("polling")
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve(sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
