"""Testing samples/user_report.py with the fixtures wfrun's pytest plugin gives every project.

    python -m pytest samples/test_user_report.py

``wfrun_run`` runs the workflow durably in a fresh ``wfrun_home``, with the activities named in
``activities=`` replaced by stand-ins (the rest run for real), and records their calls;
``wfrun_replay`` checks a saved history against today's code.
"""

import pytest
from user_report import UserReportWorkflow

import wfrun as workflows

GRACE = {"id": "7", "name": "Grace Hopper", "plan": "free", "logins": [1, 2, 4]}


def test_the_report_sums_the_users_logins(wfrun_run) -> None:
    run = wfrun_run(
        UserReportWorkflow, {"user_id": "7"}, activities={"fetch_user_data": lambda user_id: GRACE}
    )
    assert run.result == {"user": "Grace Hopper", "plan": "free", "total_logins": 7}
    assert run.calls_to("fetch_user_data") == [{"user_id": "7"}]


def test_an_unknown_user_fails_the_run_without_a_retry(wfrun_run) -> None:
    def no_such_user(user_id: str) -> dict:
        raise workflows.ApplicationError(f"user {user_id} does not exist", non_retryable=True)

    with pytest.raises(workflows.WorkflowFailedError, match="user 9 does not exist"):
        wfrun_run(
            UserReportWorkflow, {"user_id": "9"}, activities={"fetch_user_data": no_such_user}
        )


def test_a_finished_run_replays_against_todays_code(wfrun_run, wfrun_replay, wfrun_home) -> None:
    run = wfrun_run(UserReportWorkflow, {"user_id": "42"})
    assert wfrun_replay(wfrun_home / "runs" / f"{run.run_id}.jsonl", UserReportWorkflow).finished
