"""Exactly-once side effects with an idempotency key, even when an attempt runs twice.

    wfrun start samples/idempotent_payment.py:PaymentWorkflow --arg order_id=A-17 --arg cents=4200

An attempt can run again after its side effect happened: here the first attempt's response is
"lost" after the bank has already charged the card (as when a network times out). The activity
passes ``activity_info().idempotency_key`` to the bank, which stores charges by key: the retry
finds the charge already made and returns it. The key is the same for every attempt of one
call, across retries and resumes, and different for every other call and run.

The "bank" is a JSON file, ``bank-ledger.json`` in the current directory.
"""

import json
from pathlib import Path

import wfrun as workflows

LEDGER = Path("bank-ledger.json")


def bank_charge(card: str, cents: int, idempotency_key: str) -> dict:
    """Stands in for a payment API that honours an Idempotency-Key header."""
    ledger = json.loads(LEDGER.read_text()) if LEDGER.exists() else {}
    if idempotency_key not in ledger:
        ledger[idempotency_key] = {"card": card, "cents": cents, "charge": f"ch_{len(ledger) + 1}"}
        LEDGER.write_text(json.dumps(ledger, indent=2))
    return ledger[idempotency_key]


@workflows.activity(retry_policy_max_attempts=3)
async def charge(order_id: str, cents: int) -> dict:
    info = workflows.activity_info()
    receipt = bank_charge(f"card-of-{order_id}", cents, info.idempotency_key)
    if info.attempt == 1:
        raise ConnectionError("the bank's response was lost (the card was charged)")
    return {**receipt, "attempts": info.attempt}


@workflows.workflow.define(name="payment")
class PaymentWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, order_id: str, cents: int) -> dict:
        return await charge(order_id, cents)
