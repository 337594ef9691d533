"""Real code runs unchanged: the types, shapes and helpers that projects already use."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import orjson
import pytest

import wfrun as workflows

from conftest import cli, history, wf
from flows.real_code import AddressResultWorkflow, ProbeWorkflow


def run(workflow: type, params: object = None) -> object:
    return asyncio.run(workflows.execute_workflow(workflow, params))


def test_http_url_and_ipv4_address_parameters_are_encoded_as_they_are_validated() -> None:
    seen = run(ProbeWorkflow, {"url": "https://example.com/a", "address": "10.0.0.1"})
    assert seen == {
        "url": "https://example.com/a",
        "address": "10.0.0.1",
        "types": "HttpUrl,IPv4Address",
    }


def test_an_ipv4_address_result_is_encoded_and_comes_back_typed() -> None:
    from ipaddress import IPv4Address

    assert run(AddressResultWorkflow, {"address": "192.168.1.2"}) == IPv4Address("192.168.1.2")


def test_http_url_parameters_work_from_the_command_line() -> None:
    result = cli(
        "start",
        f"{wf('real_code')}:ProbeWorkflow",
        "--arg",
        "url=https://example.com/",
        "--arg",
        "address=127.0.0.1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["result"]["address"] == "127.0.0.1"


def test_a_dataclass_entrypoint_parameter_takes_its_fields_as_args(home: Path) -> None:
    result = cli(
        "start",
        f"{wf('real_code')}:DataclassInputWorkflow",
        "--arg",
        "name=Ada",
        "--arg",
        "times=2",
        "--run-id",
        "g",
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == "hello Ada hello Ada"
    assert history(home, "g")[0]["input"] == {"name": "Ada", "times": 2}


def test_a_dataclass_entrypoint_parameter_fills_its_defaults_and_names_a_missing_field() -> None:
    result = cli("start", f"{wf('real_code')}:DataclassInputWorkflow", "--arg", "times=2")
    assert result.exit_code == 2
    assert "missing argument 'name'" in result.output


def test_a_dataclass_instance_is_a_valid_input_from_python() -> None:
    from flows.real_code import DataclassInputWorkflow, Greeting

    assert run(DataclassInputWorkflow, Greeting(name="Bo")) == "hello Bo"


def test_an_activity_method_of_a_client_holding_class_is_refused_with_what_to_write() -> None:
    with pytest.raises(workflows.DefinitionError) as caught:

        class Payments:
            def __init__(self, client: object) -> None:
                self.client = client

            @workflows.activity
            async def charge(self, amount: int) -> str:
                return "ok"

    message = str(caught.value)
    assert "Payments.charge" in message
    assert "module-level function" in message
    assert "client" in message


LEGACY_TYPEDDICT = """\
from typing import TypedDict

import wfrun as workflows


class Order(TypedDict):
    id: str


@workflows.activity
async def place_order() -> Order:
    return {"id": "A1"}
"""


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="pydantic takes typing.TypedDict on 3.12+")
def test_a_typing_typeddict_result_is_refused_when_the_activity_is_defined(
    isolated: Path,
) -> None:
    (isolated / "orders.py").write_text(LEGACY_TYPEDDICT)
    result = cli("start", "orders.py:Orders")
    assert result.exit_code == 2
    assert "activity 'place_order'" in result.output
    assert "from typing_extensions import TypedDict" in result.output


def test_a_typing_extensions_typeddict_result_works() -> None:
    from flows.real_code import ordering

    assert asyncio.run(ordering()) == {"id": "A1"}


def test_the_activity_logger_adds_the_run_the_activity_and_the_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flows.real_code import NoisyWorkflow

    with caplog.at_level(logging.INFO, logger="wfrun.activity"):
        asyncio.run(workflows.execute_workflow(NoisyWorkflow, {"order": "A1"}, execution_id="n"))
    records = [r for r in caplog.records if r.getMessage() == "charging A1"]
    assert [(r.run_id, r.activity, r.attempt) for r in records] == [  # type: ignore[attr-defined]
        ("n", "noisy", 1),
        ("n", "noisy", 2),
    ]
