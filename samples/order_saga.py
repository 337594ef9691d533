"""An order saga: reserve stock, charge, ship; cancelled, it undoes what it did.

    wfrun start samples/order_saga.py:OrderSaga --arg order=A7 --run-id A7   # waits for shipping
    wfrun cancel A7 --reason "customer changed their mind"                   # compensates: CANCELED
    wfrun history A7                                                          # refund, then release

``wfrun cancel`` raises ``asyncio.CancelledError`` in the workflow where it waits. The workflow
catches it, runs its compensations (activities run as usual after a cancel), newest first, and
lets the cancellation through: the run ends CANCELED. ``wfrun signal A7 shipped_out`` instead
finishes the order (its signal is named `shipped_out`).
"""

import asyncio

import wfrun as workflows


@workflows.activity
async def reserve_stock(order: str) -> str:
    return f"stock reserved for {order}"


@workflows.activity
async def release_stock(order: str) -> str:
    return f"stock released for {order}"


@workflows.activity
async def charge(order: str) -> str:
    return f"{order} charged"


@workflows.activity
async def refund(order: str) -> str:
    return f"{order} refunded"


@workflows.workflow.define(name="order_saga")
class OrderSaga:
    def __init__(self) -> None:
        self.shipped = False

    @workflows.workflow.entrypoint
    async def run(self, order: str) -> list[str]:
        done: list[str] = []
        undo = []
        try:
            done.append(await reserve_stock(order))
            undo.append(release_stock)
            done.append(await charge(order))
            undo.append(refund)
            await workflows.workflow.wait_condition(lambda: self.shipped)
        except asyncio.CancelledError:
            for compensation in reversed(undo):
                await compensation(order)
            raise
        return [*done, f"{order} shipped"]

    @workflows.workflow.signal
    def shipped_out(self) -> None:
        self.shipped = True
