"""The workflow loop's own bookkeeping: callbacks run as asyncio runs them, tasks tracked."""

from __future__ import annotations

import contextvars
import gc
from typing import Any

from wfrun.local.loop import WorkflowLoop

from conftest import IdleLoopOwner


def _reporting_loop() -> tuple[WorkflowLoop, list[dict[str, Any]]]:
    loop = WorkflowLoop(IdleLoopOwner(), 0.0)
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(reported.append)
    return loop, reported


def test_a_cancelled_callback_neither_runs_nor_is_reported() -> None:
    loop, reported = _reporting_loop()
    ran: list[int] = []
    loop.call_soon(ran.append, 1).cancel()
    loop.call_soon(ran.append, 2)
    loop.run_until_quiescent()
    assert ran == [2]
    assert reported == []


def test_a_callback_that_raises_is_reported_as_asyncio_reports_it_and_the_rest_run() -> None:
    loop, reported = _reporting_loop()
    ran: list[str] = []

    def fails() -> None:
        raise ValueError("boom")

    handle = loop.call_soon(fails)
    loop.call_soon(ran.append, "after")
    loop.run_until_quiescent()
    assert ran == ["after"]
    [context] = reported
    assert context["message"].startswith("Exception in callback ")
    assert "fails" in context["message"]
    assert isinstance(context["exception"], ValueError)
    assert context["handle"] is handle


def test_callbacks_run_in_their_own_context_in_the_order_they_were_scheduled() -> None:
    loop, _ = _reporting_loop()
    seen: list[tuple[str, str]] = []
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")
    context = contextvars.copy_context()
    context.run(var.set, "inner")

    def look(name: str) -> None:
        seen.append((name, var.get()))
        if name == "first":
            loop.call_soon(look, "scheduled by first")

    loop.call_soon(look, "first")
    loop.call_soon(look, "second", context=context)
    loop.run_until_quiescent()
    assert seen == [("first", "outer"), ("second", "inner"), ("scheduled by first", "outer")]


def test_the_loop_keeps_no_trace_of_tasks_long_finished() -> None:
    loop, _ = _reporting_loop()

    async def quick() -> None:
        return None

    for _ in range(1_000):
        loop.create_task(quick())
        loop.run_until_quiescent()
    gc.collect()
    assert len(loop._tasks) < 100  # swept as it goes: bounded by the tasks alive


def test_abandon_quiets_the_pending_tasks_among_many_finished_ones() -> None:
    loop, _ = _reporting_loop()

    async def quick() -> None:
        return None

    async def forever() -> None:
        await loop.create_future()

    pending = [loop.create_task(forever()) for _ in range(3)]
    for _ in range(500):
        loop.create_task(quick())
    loop.run_until_quiescent()
    assert set(loop.tasks) >= set(pending)
    loop.abandon()
    assert not any(task._log_destroy_pending for task in pending)  # type: ignore[attr-defined]


class _Counting(IdleLoopOwner):
    def __init__(self) -> None:
        self.asked = 0

    def check_conditions(self) -> bool:
        self.asked += 1
        return False


def test_an_owner_is_asked_about_its_conditions_only_while_it_holds_any() -> None:
    owner = _Counting()
    conditions: list[object] = []
    loop = WorkflowLoop(owner, 0.0, conditions)
    loop.call_soon(lambda: None)
    loop.run_until_quiescent()
    assert owner.asked == 0
    conditions.append(object())
    loop.run_until_quiescent()
    assert owner.asked == 1


def test_an_owner_that_does_not_say_its_conditions_is_asked_at_every_quiescence() -> None:
    owner = _Counting()
    loop = WorkflowLoop(owner, 0.0)
    loop.run_until_quiescent()
    loop.run_until_quiescent()
    assert owner.asked == 2


def test_a_handle_made_without_its_init_has_every_field_asyncio_gives_one() -> None:
    import asyncio

    loop, _ = _reporting_loop()
    made = loop.call_soon(print, "x")
    given = asyncio.Handle(print, ("x",), loop, made._context)  # type: ignore[attr-defined]
    for name in asyncio.Handle.__slots__:
        if name != "__weakref__":
            assert getattr(made, name) == getattr(given, name), name
    assert repr(made) == repr(given)
