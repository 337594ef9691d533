"""Type-checked by mypy in CI (never run): the public API keeps users' types intact.

A ``# type: ignore[...]`` here marks a call that must be an error: mypy's
``warn_unused_ignores`` fails the check if the decorators stop catching it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import assert_type
from uuid import UUID

import wfrun as workflows


@workflows.activity
async def fetch(user_id: str) -> dict[str, int]:
    return {user_id: 1}


@workflows.activity(start_to_close_timeout=timedelta(seconds=1), retry_policy_max_attempts=1)
def blocking(n: int) -> str:
    return str(n)


@workflows.workflow.define(name="typed")
class Typed:
    @workflows.workflow.entrypoint
    async def run(self, user_id: str) -> int:
        data = await fetch(user_id)
        assert_type(data, dict[str, int])
        assert_type(await blocking(3), str)
        both = await asyncio.gather(fetch("a"), fetch("b"))
        assert_type(both, tuple[dict[str, int], dict[str, int]])
        task = asyncio.create_task(fetch("b"))
        assert_type(task, asyncio.Task[dict[str, int]])
        await fetch(42)  # type: ignore[arg-type]
        assert_type(workflows.workflow.now(), datetime)
        assert_type(workflows.workflow.uuid4(), UUID)
        assert_type(workflows.workflow.random().random(), float)
        await workflows.workflow.sleep(timedelta(seconds=1))
        await workflows.workflow.wait_condition(lambda: True, timeout=5)
        return len(data)


@workflows.activity
async def introspect() -> int:
    info = workflows.activity_info()
    assert_type(info, workflows.ActivityInfo)
    assert_type(info.idempotency_key, str)
    workflows.activity_heartbeat(info.attempt, "details")
    return info.attempt


@workflows.activity
async def notify(user_id: str) -> None:
    return None


@workflows.workflow.define(name="fan_out")
class FanOut:
    @workflows.workflow.entrypoint
    async def run(self, user_ids: list[str]) -> int:
        parallel = workflows.execute_activities_in_parallel
        assert_type(await parallel(fetch, items=user_ids), list[dict[str, int]])
        assert_type(await parallel(notify, items=user_ids), None)
        pages = await parallel(fetch, get_item_from_index_activity=page_of, n_items=3)
        assert_type(pages, list[dict[str, int]])
        return len(user_ids)


@workflows.activity(
    schedule_to_close_timeout=60,
    rate_limit=workflows.RateLimit(time_window_in_sec=1, max_execution=10),
)
async def page_of(params: workflows.GetItemFromIndexParams) -> str:
    return str(params.idx)


@workflows.activity
async def logs(order: str) -> None:
    workflows.activity.logger.info("charging %s", order)  # Temporal's activity.logger, typed
