"""The pydantic models `wfrun.concurrency` hands to activities, apart so that ``import wfrun``
does not import pydantic (the package root loads them on first use)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ExtraItemParams(BaseModel):
    """An item model that also receives ``execute_activities_in_parallel``'s ``extra_params``.

    Subclass it for the single parameter of an activity run over items; each item it receives
    carries the ``extra_params`` given to the call.
    """

    #: The ``extra_params`` given to `execute_activities_in_parallel`.
    extra_params: Any | None = None


class GetItemFromIndexParams(ExtraItemParams):
    """What ``get_item_from_index_activity`` receives: the index of the item to fetch."""

    #: The item's index, from 0 to ``n_items - 1``.
    idx: int
