"""A person fills in a form halfway through a run: Mistral's human in the loop.

    wfrun start samples/shipping_form.py:ShipGift --arg gift=teapot

On a terminal, wfrun asks for each field of the form (and again for what does not validate).
Run from a script or cron, the run waits instead (exit 75), and the form arrives later as a
signal named after its label, checked against the form before it is accepted:

    wfrun start samples/shipping_form.py:ShipGift --arg gift=teapot --run-id gift-1 < /dev/null
    wfrun signal gift-1 address '{"name": "Ada", "city": "London", "express": true}'
"""

from pydantic import BaseModel, Field

import wfrun as workflows


class Address(BaseModel):
    name: str = Field(description="who receives it")
    city: str
    express: bool = False


@workflows.activity
async def ship(gift: str, name: str, city: str, express: bool) -> str:
    speed = "express" if express else "standard"
    return f"{gift} sent to {name} in {city} ({speed})"


@workflows.workflow.define(name="ship_gift")
class ShipGift(workflows.InteractiveWorkflow):
    @workflows.workflow.entrypoint
    async def run(self, gift: str) -> str:
        address = await self.wait_for_input(Address, label="address")
        return await ship(gift, address.name, address.city, address.express)
