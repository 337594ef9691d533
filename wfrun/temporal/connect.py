"""Reaching a Temporal cluster: where it is, and a client that speaks wfrun's payloads.

The address comes from, first to last: the ``address`` argument (``--temporal HOST:PORT``),
``$WFRUN_TEMPORAL``, then Temporal's own client settings (``TEMPORAL_ADDRESS``, a profile of
Temporal's config file chosen by ``TEMPORAL_PROFILE``). The namespace likewise: the argument
(``--namespace``), then Temporal's settings (``TEMPORAL_NAMESPACE``), then ``default``. TLS, the
API key and gRPC metadata always come from Temporal's settings (``TEMPORAL_TLS*``,
``TEMPORAL_API_KEY``), wherever the address came from: a flag names the cluster, the
environment holds its secrets.

No address anywhere is a `UsageError` (exit 2) that says how to give one; a cluster that does
not answer is a `TemporalUnreachableError` (exit 74, the code of "could not read or write the
history": on Temporal, the cluster *is* the history).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import TLSConfig

from ..errors import UsageError, WfrunError
from . import NAMESPACE
from .converter import data_converter

#: wfrun's own variable for the cluster's address; it wins over Temporal's.
ADDRESS_VARIABLE = "WFRUN_TEMPORAL"
#: How long `connect` waits for a cluster to answer before it gives up.
CONNECT_TIMEOUT = timedelta(seconds=10)


class TemporalUnreachableError(WfrunError):
    """The Temporal cluster did not answer (wrong address, down, TLS or auth refused).

    Exit code 74, as for a history that cannot be read: nothing about the run was changed.

    Attributes:
        address: the ``HOST:PORT`` that was tried.
    """

    exit_code = 74

    def __init__(self, message: str, *, address: str) -> None:
        super().__init__(message)
        self.address = address


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Where a cluster is and how to reach it, resolved from flags and the environment."""

    address: str
    namespace: str
    #: Where the address came from, for messages: ``--temporal``, ``WFRUN_TEMPORAL``, ...
    source: str
    api_key: str | None = None
    tls: bool | TLSConfig = False
    rpc_metadata: Mapping[str, str] = field(default_factory=dict)


def resolve(
    address: str | None = None,
    namespace: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ClusterSettings:
    """Where to connect: the arguments, else ``$WFRUN_TEMPORAL``, else Temporal's settings.

    ``environ`` stands for ``os.environ`` (tests pass their own). Raises `UsageError` when no
    address is given anywhere, or an address is not ``HOST:PORT``.
    """
    env = dict(os.environ if environ is None else environ)
    try:
        profile = ClientConfigProfile.load(override_env_vars=env)
    except Exception as exc:  # a broken TOML file or TLS file named by the environment
        raise UsageError(f"Temporal's client settings cannot be read: {exc}") from None
    connect: dict[str, Any] = dict(profile.to_client_connect_config())
    if address:
        source = "--temporal"
    elif env.get(ADDRESS_VARIABLE):
        address, source = env[ADDRESS_VARIABLE], ADDRESS_VARIABLE
    elif connect.get("target_host"):
        address = str(connect["target_host"])
        source = "TEMPORAL_ADDRESS" if env.get("TEMPORAL_ADDRESS") else "Temporal's config file"
    else:
        raise UsageError(
            "no Temporal cluster given: pass --temporal HOST:PORT (e.g. --temporal "
            f"127.0.0.1:7233), or set {ADDRESS_VARIABLE} or TEMPORAL_ADDRESS"
        )
    address = address.strip()
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise UsageError(f"the Temporal address {address!r} (from {source}) is not HOST:PORT")
    return ClusterSettings(
        address=address,
        namespace=namespace or connect.get("namespace") or NAMESPACE,
        source=source,
        api_key=connect.get("api_key"),
        tls=connect.get("tls", False),
        rpc_metadata=dict(connect.get("rpc_metadata") or {}),
    )


async def connect(
    address: str | None = None,
    namespace: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    connect_timeout: timedelta = CONNECT_TIMEOUT,
) -> Client:
    """A Temporal client with wfrun's payload encoding, connected to the resolved cluster.

    Raises `UsageError` (no address) or `TemporalUnreachableError` (no answer within
    ``connect_timeout``, or the cluster refused the connection).
    """
    settings = resolve(address, namespace, environ=environ)
    try:
        return await Client.connect(
            settings.address,
            namespace=settings.namespace,
            api_key=settings.api_key,
            tls=settings.tls,
            rpc_metadata=settings.rpc_metadata,
            data_converter=data_converter,
            connect_timeout=connect_timeout,
            runtime=_runtime(),
        )
    except RuntimeError as exc:  # the SDK's bridge reports every failure to connect so
        raise TemporalUnreachableError(
            f"cannot reach the Temporal cluster at {settings.address} (from {settings.source}): "
            f"{_first_line(exc)}. Is the server running (`temporal server start-dev`), and is "
            "the address right?",
            address=settings.address,
        ) from None


@functools.cache
def _runtime() -> Runtime:
    """Temporal's runtime with its core's log lines sent to Python's logging (the
    ``temporalio.core`` logger, so on stderr), not printed to stdout, where a command's
    output (``--json``) goes."""
    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    level = TelemetryFilter(core_level="WARN", other_level="ERROR")
    return Runtime(
        telemetry=TelemetryConfig(logging=LoggingConfig(filter=level, forwarding=forwarding))
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
