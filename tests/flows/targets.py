"""A module with every kind of thing a TARGET can wrongly name."""

import wfrun as workflows


@workflows.activity
async def an_activity() -> None: ...


class NotAWorkflow:
    pass


@workflows.workflow.define(name="renamed")
class Original:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        return "original"


@workflows.workflow.define(name="Original")
class Impostor:
    """Its defined name is another workflow's class name: ``:Original`` is ambiguous."""

    @workflows.workflow.entrypoint
    async def run(self) -> str:
        return "impostor"


@workflows.workflow.define
class Plain:
    @workflows.workflow.entrypoint
    async def run(self) -> str:
        return "plain"
