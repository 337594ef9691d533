"""An API that fails twice before it answers: the activity's retry policy rides it out.

    wfrun start samples/flaky_api.py:FlakyApiWorkflow --arg order_id=A-17

``wfrun history <run-id>`` then shows the two failed attempts, the delay before each retry
(0.2 s, then 0.4 s) and the third attempt that succeeded.
"""

from datetime import timedelta

import wfrun as workflows


@workflows.activity(
    retry_policy_max_attempts=5,
    retry_policy_initial_interval=timedelta(milliseconds=200),
    retry_policy_backoff_coefficient=2.0,
)
async def confirm_order(order_id: str) -> dict:
    """Stands in for a payment API that answers 503 under load."""
    attempt = workflows.activity_info().attempt
    if attempt <= 2:
        raise ConnectionError(f"503 Service Unavailable (attempt {attempt})")
    return {"order_id": order_id, "status": "confirmed", "attempts": attempt}


@workflows.workflow.define(name="flaky_api")
class FlakyApiWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, order_id: str) -> dict:
        return await confirm_order(order_id)
