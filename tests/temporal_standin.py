"""A plain temporalio worker that keeps wfrun's mapping contract, for the client's tests.

``python tests/temporal_standin.py ADDRESS TASK_QUEUE READY_FILE`` serves the workflow types
below until it is terminated, and writes READY_FILE once it polls. It speaks the contract of
`wfrun.temporal` (workflow type = defined name, one JSON-object payload per input, result and
message), written with temporalio alone: the client side is tested against Temporal itself,
whatever wfrun's own worker does. The same workflows, written for wfrun, are in
``tests/flows/temporal_client.py`` (``--target`` checks messages against them).

- ``greet`` ({"name"}): calls activity ``hello`` ({"name"}), returns its answer.
- ``approval`` ({"amount"}): waits for signal ``approve`` ({"approver"}); query ``status``;
  update ``raise_limit`` ({"limit"}) returns the new limit; its validator refuses a negative
  one, its handler fails over 1000.
- ``broken`` ({}): raises a bug (KeyError): its workflow task fails, the run stays open.
- ``refused`` ({"reason"}): fails with an application error.
- ``slow`` ({}): waits an hour on a timer, or until cancelled; ``slow_deadline`` likewise,
  under the one-second ``execution_timeout`` its definition gives `start`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from wfrun.temporal.converter import data_converter


def _value(raw: RawValue) -> Any:
    return orjson.loads(raw.payload.data)


def _raw(value: Any) -> RawValue:
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=orjson.dumps(value)))


@activity.defn(dynamic=True)
async def any_activity(args: Sequence[RawValue]) -> RawValue:
    name = activity.info().activity_type
    given = _value(args[0])
    if name == "hello":
        return _raw(f"hello, {given['name']}")
    raise ApplicationError(f"no activity {name!r}", non_retryable=True)


@workflow.defn(dynamic=True, failure_exception_types=[])
class AnyWorkflow:
    def __init__(self) -> None:
        self.approver: str | None = None
        self.limit = 100

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> RawValue:
        kind = workflow.info().workflow_type
        given = _value(args[0]) if args else {}
        if kind == "greet":
            answer = await workflow.execute_activity(
                "hello",
                _raw({"name": given["name"]}),
                start_to_close_timeout=timedelta(seconds=5),
                result_type=RawValue,
            )
            return answer  # type: ignore[no-any-return]
        if kind == "approval":
            workflow.set_signal_handler("approve", self.approve)
            workflow.set_query_handler("status", self.status)
            workflow.set_update_handler("raise_limit", self.raise_limit, validator=self.check)
            await workflow.wait_condition(lambda: self.approver is not None)
            return _raw(f"paid {given['amount']} EUR, approved by {self.approver}")
        if kind == "broken":
            return _raw({}["missing"])
        if kind == "refused":
            raise ApplicationError(given["reason"], type="PaymentDeclined", non_retryable=True)
        if kind in ("slow", "slow_deadline"):
            await asyncio.sleep(3600)
            return _raw("woke up")
        raise ApplicationError(f"no workflow {kind!r}", non_retryable=True)

    def approve(self, arguments: RawValue) -> None:
        self.approver = _value(arguments)["approver"]

    def status(self, *arguments: RawValue) -> RawValue:
        return _raw(f"approved by {self.approver}" if self.approver else "waiting")

    def check(self, arguments: RawValue) -> None:
        if _value(arguments)["limit"] < 0:
            raise ValueError("a limit is never negative")

    def raise_limit(self, arguments: RawValue) -> RawValue:
        limit = _value(arguments)["limit"]
        if limit > 1000:  # accepted, then failed by the handler itself
            raise ApplicationError("over the approver's authority", type="TooHigh")
        self.limit = limit
        return _raw(self.limit)


async def serve(address: str, task_queue: str, ready: Path) -> None:
    client = await Client.connect(address, data_converter=data_converter)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[AnyWorkflow],
        activities=[any_activity],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with worker:
        ready.write_text("polling")
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
