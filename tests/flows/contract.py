"""Activities that exercise the data contract: types, sizes, threads, heartbeats, identity."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import os
import time
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as daytime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel

import wfrun as workflows

from flows.steps import FAST_RETRY, log_attempt, reached, step


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int
    label: str | None = None


class ApiResponse(BaseModel):
    status: int
    body: dict[str, Any]
    received: datetime


@dataclasses.dataclass
class Everything:
    """One field of each supported type."""

    when: datetime
    day: date
    clock: daytime
    ident: UUID
    color: Color
    amount: Decimal
    blob: bytes
    pair: tuple[int, str]
    tags: set[str]
    point: Point
    response: ApiResponse
    numbers: dict[int, float]
    nothing: None = None


def everything() -> Everything:
    plus_two = timezone(timedelta(hours=2))
    return Everything(
        when=datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=plus_two),
        day=date(2026, 3, 1),
        clock=daytime(9, 30, tzinfo=UTC),
        ident=UUID("12345678-1234-5678-1234-567812345678"),
        color=Color.BLUE,
        amount=Decimal("10.50"),
        blob=b"\x00\xffraw bytes",
        pair=(1, "a"),
        tags={"b", "a", "c"},
        point=Point(1, 2, "p"),
        response=ApiResponse(
            status=200, body={"ok": True}, received=datetime(2026, 3, 1, tzinfo=UTC)
        ),
        numbers={1: 1.5, 2: 2.5},
    )


@workflows.activity
async def echo(values: Everything) -> Everything:
    log_attempt("echo")
    return values


@workflows.activity
async def echo_each(
    when: datetime,
    day: date,
    clock: daytime,
    ident: UUID,
    color: Color,
    amount: Decimal,
    blob: bytes,
    pair: tuple[int, str],
    tags: set[str],
    point: Point,
    response: ApiResponse,
    numbers: dict[int, float],
) -> tuple[
    datetime,
    date,
    daytime,
    UUID,
    Color,
    Decimal,
    bytes,
    tuple[int, str],
    set[str],
    Point,
    ApiResponse,
    dict[int, float],
]:
    return (when, day, clock, ident, color, amount, blob, pair, tags, point, response, numbers)


@workflows.activity
async def fetch_response(status: int) -> ApiResponse:
    return ApiResponse(
        status=status, body={"from": "api"}, received=datetime(2026, 1, 1, tzinfo=UTC)
    )


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@workflows.workflow.define(name="types")
class TypesWorkflow:
    """Sends every type through activities and reports, field by field, what came back."""

    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        sent = everything()
        back = await echo(sent)
        each = await echo_each(
            *(getattr(sent, f.name) for f in dataclasses.fields(sent) if f.name != "nothing")
        )
        response = await fetch_response(201)
        await step(99)  # a test kills the process here
        fields = [f.name for f in dataclasses.fields(sent)]
        return {
            "echo": {name: _same(getattr(back, name), getattr(sent, name)) for name in fields},
            "each": [_same(x, getattr(sent, name)) for x, name in zip(each, fields, strict=False)],
            "is_everything": type(back) is Everything,
            "response": [type(response).__name__, response.status],
            "tz": back.when.utcoffset().total_seconds(),
        }


# -- sizes -----------------------------------------------------------------------------------


@workflows.activity
async def store_blob(data: str) -> int:
    log_attempt("store_blob")
    return len(data)


@workflows.activity(retry_policy_max_attempts=3, retry_policy_initial_interval=FAST_RETRY)
async def make_blob(size: int) -> str:
    log_attempt("make_blob")
    return "x" * size


@workflows.activity(max_payload=1024)
async def small_only(data: str) -> int:
    log_attempt("small_only")
    return len(data)


@workflows.workflow.define(name="sizes")
class SizesWorkflow:
    """Sends or asks for ``size`` bytes; reports a PayloadTooLargeError instead of failing."""

    @workflows.workflow.entrypoint
    async def run(self, direction: str, size: int) -> dict:
        try:
            if direction == "in":
                return {"ok": await store_blob("x" * size)}
            if direction == "small":
                return {"ok": await small_only("x" * size)}
            return {"ok": len(await make_blob(size))}
        except workflows.PayloadTooLargeError as exc:
            return {
                "error": str(exc),
                "activity": exc.activity,
                "side": exc.side,
                "size": exc.size,
                "limit": exc.limit,
            }


# -- values that cannot travel -----------------------------------------------------------------


class Opaque:
    """Not JSON, not a dataclass, not a model."""


@workflows.activity
async def takes_anything(value: Any) -> None:
    log_attempt("takes_anything")


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
async def returns_opaque() -> Any:
    log_attempt("returns_opaque")
    return Opaque()


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
async def promises_a_response() -> ApiResponse:
    log_attempt("promises_a_response")
    return {"status": "teapot", "body": {}}  # type: ignore[return-value]


@workflows.workflow.define(name="bad_values")
class BadValuesWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, which: str) -> str:
        try:
            if which == "argument":
                await takes_anything(Opaque())
            elif which == "result":
                await returns_opaque()
            else:
                await promises_a_response()
        except workflows.EncodingError as exc:
            return f"EncodingError: {exc}"
        except workflows.ActivityError as exc:
            return f"ActivityError: {exc}"
        return "no error"


# -- threads and blocking ----------------------------------------------------------------------


@workflows.activity
def blocking_sleep(seconds: float) -> float:
    """A plain def activity: runs in a worker thread."""
    time.sleep(seconds)
    return seconds


@workflows.activity
def meets(me: str, other: str) -> bool:
    """A plain def activity that says it started, then waits in its thread for ``other`` to.

    True when it saw the other start: both bodies ran at the same time. A bounded wait, so that
    activities run one after the other fail the test instead of hanging it.
    """
    log_attempt(me)
    other_started = Path(os.environ["WFRUN_TEST_LOG"]) / f"{other}.log"
    deadline = time.monotonic() + 10
    while not other_started.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@workflows.activity
async def naughty_sleep(seconds: float) -> float:
    """An async activity that blocks the event loop: the watchdog names it."""
    time.sleep(seconds)
    return seconds


@workflows.activity(start_to_close_timeout=timedelta(milliseconds=200), retry_policy_max_attempts=1)
def hangs_in_a_thread() -> None:
    time.sleep(1.0)


@workflows.workflow.define(name="threads")
class ThreadsWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, which: str, seconds: float) -> Any:
        if which == "plain":
            return await asyncio.gather(blocking_sleep(seconds), blocking_sleep(seconds))
        if which == "meet":
            return await asyncio.gather(meets("left", "right"), meets("right", "left"))
        if which == "naughty":
            return await naughty_sleep(seconds)
        await hangs_in_a_thread()
        return None


# -- heartbeats and identity -------------------------------------------------------------------


def _journal(name: str, line: str) -> None:
    with open(Path(os.environ["WFRUN_TEST_LOG"]) / f"{name}.log", "a") as f:
        f.write(line + "\n")


@workflows.activity(
    retry_policy_max_attempts=3,
    retry_policy_initial_interval=FAST_RETRY,
    heartbeat_timeout=timedelta(seconds=5),
)
async def download(chunks: int, delay: float, fail_at: int) -> int:
    """Downloads chunk by chunk from where the last attempt's heartbeat left off."""
    info = workflows.activity_info()
    start = info.heartbeat_details[0] if info.heartbeat_details else 0
    _journal("download", f"attempt {info.attempt} from {start}")
    for chunk in range(start, chunks):
        if chunk == fail_at and info.attempt == 1:
            raise ConnectionError(f"connection reset at chunk {chunk}")
        await asyncio.sleep(delay)
        workflows.activity_heartbeat(chunk + 1)
        await reached(f"chunk{chunk + 1}")  # a test kills the process here
    return chunks


@workflows.workflow.define(name="download")
class DownloadWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, chunks: int, delay: float, fail_at: int = -1) -> int:
        return await download(chunks, delay, fail_at)


@workflows.activity(heartbeat_timeout=timedelta(milliseconds=300), retry_policy_max_attempts=1)
async def goes_quiet() -> None:
    workflows.activity_heartbeat("alive")
    await asyncio.sleep(5)


@workflows.activity
async def chatter(count: int) -> int:
    for i in range(count):
        workflows.activity_heartbeat(i)
    return count


@workflows.activity
def chatter_in_a_thread(count: int) -> int:
    for i in range(count):
        workflows.activity_heartbeat(i)
    return count


@workflows.activity(retry_policy_max_attempts=1)
async def beats_opaque() -> None:
    workflows.activity_heartbeat(Opaque())


@workflows.activity(retry_policy_max_attempts=2, retry_policy_initial_interval=FAST_RETRY)
async def beats_typed() -> list[Any]:
    info = workflows.activity_info()
    if info.attempt == 1:
        workflows.activity_heartbeat(date(2026, 1, 1), Decimal("1.5"))
        raise ConnectionError("try again")
    return [list(info.heartbeat_details), info.heartbeat_details == ("2026-01-01", "1.5")]


@workflows.workflow.define(name="heartbeats")
class HeartbeatsWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, which: str) -> Any:
        if which == "quiet":
            await goes_quiet()
        elif which == "chatter":
            return await chatter(10_000)
        elif which == "opaque":
            return await beats_opaque()
        elif which == "typed":
            return await beats_typed()
        return await chatter_in_a_thread(500)


@workflows.activity(retry_policy_max_attempts=3, retry_policy_initial_interval=FAST_RETRY)
async def charge_card(order: str, delay: float) -> str:
    info = workflows.activity_info()
    _journal(
        "keys",
        f"{info.activity_id} {info.attempt} {info.idempotency_key} {info.run_id} "
        f"{info.name} {info.workflow_name}",
    )
    if info.attempt == 1:
        raise ConnectionError("timeout talking to the bank")
    await reached("charging")  # a test kills the process here
    await asyncio.sleep(delay)
    return f"charged {order}"


@workflows.workflow.define(name="payment")
class PaymentWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, delay: float = 0.0) -> list[str]:
        return [await charge_card("A", delay), await charge_card("B", 0.0)]


class Receipt(BaseModel):
    order: str
    at: datetime
    total: Decimal


@workflows.workflow.define(name="typed_workflow")
class TypedWorkflow:
    """Typed input and result at the workflow level."""

    @workflows.workflow.entrypoint
    async def run(self, order: str, at: datetime, total: Decimal, huge: int = 0) -> Receipt:
        if huge:
            return Receipt(order="x" * huge, at=at, total=total)
        return Receipt(order=order, at=at, total=total)


@workflows.workflow.define(name="wrong_result")
class WrongResultWorkflow:
    """Promises a number and returns text."""

    @workflows.workflow.entrypoint
    async def run(self) -> int:
        return "forty-two"  # type: ignore[return-value]
