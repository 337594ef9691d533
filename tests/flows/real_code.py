"""Code as real projects write it, which must run unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from pydantic import HttpUrl
from typing_extensions import TypedDict

import wfrun as workflows


@workflows.activity
async def probe(url: HttpUrl, address: IPv4Address) -> dict[str, str]:
    return {
        "url": str(url),
        "address": str(address),
        "types": f"{type(url).__name__},{type(address).__name__}",
    }


@workflows.workflow.define(name="probe")
class ProbeWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, url: HttpUrl, address: IPv4Address) -> dict[str, str]:
        return await probe(url, address)


@workflows.workflow.define(name="address_result")
class AddressResultWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, address: str) -> IPv4Address:
        return IPv4Address(address)


@dataclass
class Greeting:
    name: str
    times: int = 1


@workflows.workflow.define(name="greet_dataclass")
class DataclassInputWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, params: Greeting) -> str:
        return " ".join([f"hello {params.name}"] * params.times)


class Order(TypedDict):
    id: str


@workflows.activity
async def ordering() -> Order:
    return {"id": "A1"}


@workflows.activity(retry_policy_max_attempts=2, retry_policy_initial_interval=0.01)
async def noisy(order: str) -> str:
    workflows.activity.logger.info("charging %s", order)
    if workflows.activity_info().attempt == 1:
        raise ConnectionError("flaky")
    return order


@workflows.workflow.define(name="noisy")
class NoisyWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, order: str) -> str:
        return await noisy(order)
