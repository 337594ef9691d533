"""A workflow whose names, errors and values carry terminal escapes and rich markup."""

from __future__ import annotations

import wfrun as workflows

#: Clears the screen, writes the clipboard (OSC 52), an 8-bit CSI, a right-to-left override,
#: and markup that would end a style nobody opened.
NASTY = "\x1b[2J\x1b]52;c;aGk=\x07\u009b31m\u202e[/bold][link=x]:warning:"


@workflows.activity(name=f"act{NASTY}", retry_policy_max_attempts=1)
async def hostile(value: str) -> str:
    raise ValueError(f"boom {value}")


@workflows.activity(name=f"echo{NASTY}")
async def echo(value: str) -> str:
    return value


@workflows.workflow.define(name=f"wf{NASTY}")
class HostileWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, value: str) -> str:
        await echo(value)
        return await hostile(value)
