"""Payloads on Temporal in wfrun's JSON encoding.

Temporal hands every value through a payload converter. wfrun's is Temporal's own composite
(``None`` and ``bytes`` as Temporal encodes them, so other SDKs read them) with wfrun's JSON in
place of Temporal's: the same bytes a local history would store (`wfrun.payload.encode`), under
the ``json/plain`` encoding that Temporal's UI and CLI show as JSON. A type hint decodes as wfrun
decodes (pydantic in JSON mode), so a value has the same type on both backends.

`temporalio.common.RawValue` passes through untouched: wfrun's worker and client pass encoded
payloads that way and decode them against wfrun's own signatures.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.converter import (
    BinaryNullPayloadConverter,
    BinaryPlainPayloadConverter,
    CompositePayloadConverter,
    DataConverter,
    EncodingPayloadConverter,
)

from ..payload import encode

JSON_ENCODING: Final = b"json/plain"


class WfrunJSONConverter(EncodingPayloadConverter):
    """Any value wfrun encodes, as ``json/plain`` bytes in wfrun's encoding."""

    @property
    def encoding(self) -> str:
        return JSON_ENCODING.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return Payload(
            metadata={"encoding": JSON_ENCODING},
            data=encode(value, subject="a value sent to Temporal"),
        )

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        return _adapter(Any if type_hint is None else type_hint).validate_json(payload.data)


@functools.lru_cache(maxsize=256)
def _adapter(type_hint: Any) -> TypeAdapter[Any]:
    # Building an adapter costs far more than using one: once per type.
    return TypeAdapter(type_hint)


class WfrunPayloadConverter(CompositePayloadConverter):
    """Temporal's null and binary encodings, then wfrun's JSON for everything else."""

    def __init__(self) -> None:
        super().__init__(
            BinaryNullPayloadConverter(), BinaryPlainPayloadConverter(), WfrunJSONConverter()
        )


#: What a wfrun client and worker pass to ``Client.connect(data_converter=...)``.
data_converter: Final = DataConverter(payload_converter_class=WfrunPayloadConverter)


def payload(data: bytes) -> RawValue:
    """Bytes already in wfrun's encoding (an input, a result) as the one Temporal payload they
    travel in, untouched by any converter: ``client.start_workflow(name, payload(data), ...)``."""
    return RawValue(Payload(metadata={"encoding": JSON_ENCODING}, data=data))
