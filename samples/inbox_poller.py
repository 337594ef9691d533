"""A loop that runs for months: poll, handle, wait, and start afresh before the history grows.

    wfrun start samples/inbox_poller.py:InboxPoller --arg rounds=6 --arg per_run=2

Each round polls for new mail and waits an hour (a durable timer: the run waits with no
process, and ``wfrun resume --all`` from cron carries it on when the hour is up). Every
``per_run`` rounds it continues as new: the run ends, handing its cursor to a fresh run of the
same workflow, so no history (and no replay) grows without bound. ``wfrun start``, ``resume``
and ``execute_workflow`` follow the chain to its final result; in real use, leave ``per_run``
out and let ``workflow.should_continue_as_new()`` decide.
"""

from datetime import timedelta

import wfrun as workflows


@workflows.activity
async def poll(cursor: int) -> list[str]:
    return [f"mail-{cursor}"]


@workflows.activity
async def handle(mail: str) -> None:
    pass


@workflows.workflow.define(name="inbox_poller")
class InboxPoller:
    @workflows.workflow.entrypoint
    async def run(self, rounds: int, cursor: int = 0, per_run: int = 0, pause: float = 3600) -> int:
        """Poll ``rounds`` times in all; return how many mails were handled."""
        for done in range(cursor, rounds):
            for mail in await poll(done):
                await handle(mail)
            if done + 1 == rounds:
                break
            await workflows.workflow.sleep(timedelta(seconds=pause))
            if (per_run and (done + 1 - cursor) % per_run == 0) or (
                workflows.workflow.should_continue_as_new()
            ):
                next_round = {"rounds": rounds, "cursor": done + 1, "per_run": per_run}
                workflows.workflow.continue_as_new({**next_round, "pause": pause})
        return rounds
