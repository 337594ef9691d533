"""A service that never answers: each attempt is cut off at its timeout, retried, then it fails.

    wfrun start samples/hung_call.py:HungCallWorkflow --arg url=https://slow.example.com

Exits 1 after about 2.2 s: two attempts of 1 s each (``start_to_close_timeout``) with 0.2 s
between them. ``wfrun show <run-id>`` gives the error the workflow ended with.
"""

import asyncio
from datetime import timedelta

import wfrun as workflows


@workflows.activity(
    start_to_close_timeout=timedelta(seconds=1),
    retry_policy_max_attempts=2,
    retry_policy_initial_interval=timedelta(milliseconds=200),
)
async def call_hung_service(url: str) -> str:
    """Stands in for a request to a server that accepts the connection and never replies."""
    await asyncio.sleep(3600)
    return "unreachable"


@workflows.workflow.define(name="hung_call")
class HungCallWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, url: str) -> str:
        return await call_hung_service(url)
