"""An expense that waits for a person's approval: days, if need be, with no process running.

    wfrun start samples/approval.py:ExpenseApproval --arg amount=420 --run-id exp-1   # exit 75
    wfrun query exp-1 status                                                        # "waiting"
    wfrun signal exp-1 approve '{"approver": "ada"}'                                # pays it

The run records that it is WAITING and its process exits; ``wfrun signal`` writes the approval
to the run's inbox and carries the run on. If nobody answers in three days, the timeout wins
and the expense is rejected: the run stays WAITING until then, and a crontab line such as

    * * * * * cd /srv/expenses && wfrun resume --all >> wfrun.log 2>&1

continues it when its time comes (or when a signal was stored with ``--no-resume``).
"""

from datetime import timedelta

import wfrun as workflows


@workflows.activity
async def pay(amount: int, approver: str) -> str:
    return f"paid {amount} EUR, approved by {approver}"


@workflows.workflow.define(name="expense_approval")
class ExpenseApproval:
    def __init__(self) -> None:
        self.approver: str | None = None

    @workflows.workflow.entrypoint
    async def run(self, amount: int) -> str:
        try:
            await workflows.workflow.wait_condition(
                lambda: self.approver is not None, timeout=timedelta(days=3)
            )
        except TimeoutError:
            return f"rejected: nobody approved {amount} EUR within three days"
        assert self.approver is not None
        return await pay(amount, self.approver)

    @workflows.workflow.signal
    def approve(self, approver: str) -> None:
        self.approver = approver

    @workflows.workflow.query
    def status(self) -> str:
        return f"approved by {self.approver}" if self.approver else "waiting"
