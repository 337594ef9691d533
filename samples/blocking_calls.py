"""Blocking libraries belong in plain ``def`` activities, which run in worker threads.

    wfrun start samples/blocking_calls.py:BlockingCallsWorkflow --arg calls=4

``legacy_lookup`` uses a blocking client (``time.sleep`` stands in for ``requests.post``), so
it is a plain ``def``: wfrun runs it in a thread pool and the four calls overlap (about 0.5 s
in all, not 2 s). ``careless_lookup`` makes the same blocking call inside an ``async def``,
which freezes the event loop for every other activity: wfrun names it on stderr, with how
long it blocked and the fix. The threshold is 0.25 s (``WFRUN_BLOCKING_THRESHOLD``).
"""

import asyncio
import time

import wfrun as workflows


@workflows.activity
def legacy_lookup(key: str) -> str:
    time.sleep(0.5)  # a blocking HTTP client
    return f"value of {key}"


@workflows.activity
async def careless_lookup(key: str) -> str:
    time.sleep(0.5)
    return f"value of {key}"


@workflows.workflow.define(name="blocking_calls")
class BlockingCallsWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, calls: int) -> dict:
        started = workflows.workflow.now()
        values = await asyncio.gather(*(legacy_lookup(f"k{i}") for i in range(calls)))
        threaded = (workflows.workflow.now() - started).total_seconds()
        careless = await careless_lookup("k0")
        return {"values": values, "threaded_seconds": round(threaded, 1), "careless": careless}
