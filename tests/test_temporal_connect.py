"""Where `wfrun.temporal.connect` finds the cluster: flag, WFRUN_TEMPORAL, Temporal's settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the Temporal extra is not installed")

from wfrun.errors import UsageError
from wfrun.temporal.connect import TemporalUnreachableError, connect, resolve

from temporal_server import free_port

#: An environment with no Temporal settings at all (and no config file to find).
EMPTY = {"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"}


def test_the_address_argument_wins_over_every_variable() -> None:
    env = {**EMPTY, "WFRUN_TEMPORAL": "wf:1", "TEMPORAL_ADDRESS": "t:2"}
    settings = resolve("flag:3", environ=env)
    assert (settings.address, settings.source) == ("flag:3", "--temporal")


def test_wfrun_temporal_wins_over_temporal_address() -> None:
    settings = resolve(environ={**EMPTY, "WFRUN_TEMPORAL": "wf:1", "TEMPORAL_ADDRESS": "t:2"})
    assert (settings.address, settings.source) == ("wf:1", "WFRUN_TEMPORAL")


def test_temporal_address_is_used_when_nothing_else_is_given() -> None:
    settings = resolve(environ={**EMPTY, "TEMPORAL_ADDRESS": "t:2"})
    assert (settings.address, settings.source) == ("t:2", "TEMPORAL_ADDRESS")


def test_a_profile_of_temporals_config_file_gives_address_and_namespace(tmp_path: Path) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text(
        '[profile.default]\naddress = "file:7233"\n'
        '[profile.prod]\naddress = "prod:7233"\nnamespace = "payments"\n'
    )
    env = {"TEMPORAL_CONFIG_FILE": str(config), "TEMPORAL_PROFILE": "prod"}
    settings = resolve(environ=env)
    assert (settings.address, settings.namespace) == ("prod:7233", "payments")


def test_the_namespace_argument_wins_over_temporal_namespace() -> None:
    env = {**EMPTY, "TEMPORAL_NAMESPACE": "env-ns"}
    assert resolve("h:1", "flag-ns", environ=env).namespace == "flag-ns"
    assert resolve("h:1", environ=env).namespace == "env-ns"
    assert resolve("h:1", environ=EMPTY).namespace == "default"


def test_an_api_key_from_the_environment_turns_tls_on_whatever_gave_the_address() -> None:
    settings = resolve("h:1", environ={**EMPTY, "TEMPORAL_API_KEY": "secret"})
    assert settings.api_key == "secret"
    assert settings.tls is True


def test_no_address_anywhere_is_a_usage_error_saying_how_to_give_one() -> None:
    with pytest.raises(UsageError, match="--temporal HOST:PORT") as caught:
        resolve(environ=EMPTY)
    assert caught.value.exit_code == 2
    assert "WFRUN_TEMPORAL" in str(caught.value)


def test_an_address_without_a_port_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not HOST:PORT"):
        resolve("localhost", environ=EMPTY)


def test_a_cluster_that_does_not_answer_is_exit_74_naming_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(TemporalUnreachableError, match="cannot reach") as caught:
        asyncio.run(connect(address, environ=EMPTY))
    assert caught.value.exit_code == 74
    assert address in str(caught.value)


def test_connect_reaches_a_real_server_with_wfruns_payloads(temporal_server: str) -> None:
    from wfrun.temporal.converter import data_converter

    async def check() -> None:
        client = await connect(environ={**EMPTY, "WFRUN_TEMPORAL": temporal_server})
        assert client.data_converter is data_converter
        assert client.namespace == "default"
        await client.count_workflows()

    asyncio.run(check())
