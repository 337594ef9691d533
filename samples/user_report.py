"""The seed's example: fetch a user, then build their report.

    wfrun start samples/user_report.py:UserReportWorkflow --arg user_id=42

The "HTTP" call goes to an in-process fake API through httpx-free code, so the sample needs
no network. Set ``USER_REPORT_DELAY`` (seconds) to make each step slow enough to kill and
resume by hand.
"""

import asyncio
import os

import wfrun as workflows

DELAY = float(os.environ.get("USER_REPORT_DELAY", "0.1"))

_FAKE_USERS = {"42": {"id": "42", "name": "Ada Lovelace", "plan": "pro", "logins": [3, 5, 8]}}


@workflows.activity()
async def fetch_user_data(user_id: str) -> dict:
    """Stands in for ``GET https://api.example.com/users/{user_id}``."""
    await asyncio.sleep(DELAY)
    user = _FAKE_USERS.get(user_id)
    if user is None:
        raise workflows.ApplicationError(f"user {user_id} does not exist", non_retryable=True)
    return user


@workflows.activity()
async def generate_report(user: dict) -> dict:
    await asyncio.sleep(DELAY)
    return {
        "user": user["name"],
        "plan": user["plan"],
        "total_logins": sum(user["logins"]),
    }


@workflows.workflow.define(name="user_report")
class UserReportWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, user_id: str) -> dict:
        user = await fetch_user_data(user_id)
        return await generate_report(user)
