"""A workflow whose activities tests replace with stand-ins (`wfrun.testing.run_workflow`).

The real activities log each attempt (`log_attempt`), so a test can prove they did not run.
"""

from __future__ import annotations

from datetime import timedelta

import wfrun as workflows

from .steps import FAST_RETRY, log_attempt


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
async def fetch_profile(user_id: str) -> dict:
    log_attempt("fetch_profile")
    return {"name": "Real Person", "email": f"{user_id}@example.com"}


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
def send_email(to: str, body: str) -> bool:
    """A plain ``def``: it runs in a worker thread."""
    log_attempt("send_email")
    return True


@workflows.workflow.define(name="welcome")
class WelcomeWorkflow:
    """Fetch a profile, wait ``wait_days`` (a durable timer), then send a welcome email."""

    @workflows.workflow.entrypoint
    async def run(self, user_id: str, wait_days: float = 0) -> str:
        profile = await fetch_profile(user_id)
        if wait_days:
            await workflows.workflow.sleep(timedelta(days=wait_days))
        sent = await send_email(profile["email"], f"Welcome, {profile['name']}!")
        return f"{profile['name']}: {'sent' if sent else 'not sent'}"
