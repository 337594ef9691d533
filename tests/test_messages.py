"""Signals and queries reach a run with no daemon: through its inbox, exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

import wfrun as workflows

from conftest import attempts, cli, run_wfrun, spawn_wfrun, wait_for_file, wf, write_module
from flows.golden import ApprovalWorkflow

APPROVAL = f"{wf('golden')}:ApprovalWorkflow"


def events(home: Path, run_id: str) -> list[dict]:
    return [orjson.loads(x) for x in (home / "runs" / f"{run_id}.jsonl").read_bytes().splitlines()]


def waiting_run(run_id: str = "a") -> str:
    result = cli("start", APPROVAL, "--arg", "order=A1", "--run-id", run_id)
    assert result.exit_code == 75, result.output
    return run_id


def test_a_signal_resumes_a_waiting_run_which_records_and_finishes(home: Path) -> None:
    waiting_run()
    result = cli("signal", "a", "approve", '{"approver": "ada"}')
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == "A1 APPROVED BY ADA"
    [received] = [e for e in events(home, "a") if e["type"] == "SignalReceived"]
    assert (received["name"], received["input"]) == ("approve", {"approver": "ada"})


def test_a_query_answers_from_the_runs_state_and_writes_nothing(home: Path) -> None:
    waiting_run()
    before = (home / "runs" / "a.jsonl").read_bytes()
    asked = cli("query", "a", "status")
    assert asked.exit_code == 0, asked.output
    assert orjson.loads(asked.stdout) == "waiting for approval"
    assert (home / "runs" / "a.jsonl").read_bytes() == before
    cli("signal", "a", "approve", '{"approver": "ada"}')
    assert orjson.loads(cli("query", "a", "status").stdout) == "approved by ada"  # ended, too


def test_an_unknown_signal_or_query_names_the_ones_defined(home: Path) -> None:
    waiting_run()
    unknown = cli("signal", "a", "aprove", '{"approver": "ada"}')
    assert unknown.exit_code == 2
    assert "no signal 'aprove'; it defines 'approve'" in unknown.stderr
    assert not (home / "inbox" / "a.jsonl").exists()  # nothing was sent
    assert "no query 'state'; it defines 'status'" in cli("query", "a", "state").stderr


def test_signal_arguments_are_checked_before_anything_is_sent(home: Path) -> None:
    waiting_run()
    bad = cli("signal", "a", "approve", '{"approver": 42, "extra": 1}')
    assert bad.exit_code == 2
    assert "no parameter 'extra'" in bad.stderr
    assert not (home / "inbox" / "a.jsonl").exists()


def test_a_signal_to_a_run_that_ended_is_refused(home: Path) -> None:
    waiting_run()
    cli("signal", "a", "approve", '{"approver": "ada"}')
    late = cli("signal", "a", "approve", '{"approver": "bob"}')
    assert late.exit_code == 2
    assert "has ended (COMPLETED)" in late.stderr


def test_no_resume_stores_the_signal_for_the_next_resume_all(home: Path) -> None:
    waiting_run()
    stored = cli("signal", "a", "approve", '{"approver": "ada"}', "--no-resume")
    assert stored.exit_code == 0, stored.output
    assert "stored" in stored.stderr
    [listed] = orjson.loads(cli("list", "--json").stdout)
    assert listed["status"] == "WAITING"
    resumed = cli("resume", "--all", "--json")
    assert resumed.exit_code == 0, resumed.output
    [line] = orjson.loads(resumed.stdout)
    assert (line["run_id"], line["status"]) == ("a", "COMPLETED")


def test_a_message_is_delivered_once_wherever_the_run_stopped(home: Path) -> None:
    """A crash after the signal returned: before the run read it, or after it recorded it."""
    waiting_run("once")
    cli("signal", "once", "approve", '{"approver": "ada"}')
    full = (home / "runs" / "once.jsonl").read_bytes().splitlines(keepends=True)
    received = next(i for i, line in enumerate(full) if b'"SignalReceived"' in line)
    for keep in range(1, len(full)):  # every point a kill -9 can leave behind
        (home / "runs" / "once.jsonl").write_bytes(b"".join(full[:keep]))
        result = cli("resume", "once", "--json")
        assert result.exit_code == 0, (keep, result.output)
        assert orjson.loads(result.stdout)["result"] == "A1 APPROVED BY ADA"
        kinds = [e["type"] for e in events(home, "once")]
        assert kinds.count("SignalReceived") == 1, keep
    assert received > 0


def test_signals_and_queries_from_python(home: Path) -> None:
    async def scenario() -> tuple[str, workflows.SignalSent, str]:
        with pytest.raises(workflows.WfrunError, match="WAITING"):
            await workflows.execute_workflow(ApprovalWorkflow, {"order": "B2"}, execution_id="p")
        before = await workflows.query_workflow("p", "status")
        sent = await workflows.signal_workflow("p", "approve", {"approver": "grace"})
        return before, sent, await workflows.query_workflow("p", "status")

    before, sent, after = asyncio.run(scenario())
    assert before == "waiting for approval"
    assert sent.recorded
    assert sent.outcome is not None
    assert sent.outcome.result == "B2 APPROVED BY GRACE"
    assert after == "approved by grace"


@pytest.mark.slow
def test_a_live_run_records_a_signal_sent_from_another_process(isolated: Path, log: Path) -> None:
    marker = isolated / "live"
    live = f"{wf('messages')}:LiveApprovalWorkflow"
    process = spawn_wfrun(
        "start", live, "--arg", "order=C3", "--arg", f"marker={marker}", "--run-id", "live"
    )
    wait_for_file(marker, process)
    sent_at = time.monotonic()
    signal = run_wfrun("signal", "live", "approve", '{"approver": "lin"}')
    took = time.monotonic() - sent_at
    assert signal.returncode == 0, signal.stderr
    assert "recorded by the live run" in signal.stderr
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert orjson.loads(out) == "C3 shipped, approved by lin"
    assert attempts(log, "ship") == 1
    print(f"signal to a live run: recorded {took:.3f}s after sending")


# -- cancel ---------------------------------------------------------------------------------

SAGA = f"{wf('messages')}:SagaWorkflow"


def test_cancel_lets_the_workflow_clean_up_and_ends_the_run_canceled(home: Path, log: Path) -> None:
    assert cli("start", SAGA, "--arg", "order=O1", "--run-id", "o1").exit_code == 75
    result = cli("cancel", "o1", "--reason", "customer left", "--json")
    assert result.exit_code == 1, result.output
    line = orjson.loads(result.stdout.splitlines()[0])
    assert line["status"] == "CANCELED"
    assert "customer left" in line["error"]["message"]
    kinds = [e["type"] for e in events(home, "o1")]
    assert kinds.index("CancelRequested") < kinds.index("ActivityScheduled", 3)
    assert kinds[-1] == "WorkflowCanceled"
    assert (attempts(log, "reserve"), attempts(log, "release")) == (1, 1)
    assert orjson.loads(cli("list", "--json").stdout)[0]["status"] == "CANCELED"


def test_a_run_that_ended_cannot_be_cancelled(home: Path) -> None:
    cli("start", SAGA, "--arg", "order=O2", "--run-id", "o2")
    cli("signal", "o2", "pay")
    late = cli("cancel", "o2")
    assert late.exit_code == 2
    assert "has ended (COMPLETED)" in late.stderr


@pytest.mark.slow
def test_cancel_reaches_a_live_run_and_stops_the_activity_in_flight(
    isolated: Path, home: Path, log: Path
) -> None:
    marker = isolated / "packing"
    process = spawn_wfrun(
        "start", SAGA, "--arg", "order=O3", "--arg", f"marker={marker}", "--run-id", "o3"
    )
    wait_for_file(marker, process)
    cancel = run_wfrun("cancel", "o3", "--reason", "out of stock")
    assert cancel.returncode == 0, cancel.stderr
    assert "recorded by the live run" in cancel.stderr
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    kinds = [e["type"] for e in events(home, "o3")]
    assert "ActivityCanceled" in kinds  # pack, cut short, not left running
    assert kinds[-1] == "WorkflowCanceled"
    assert (attempts(log, "pack"), attempts(log, "release")) == (1, 1)


def test_a_thread_activity_sees_that_its_attempt_was_given_up(isolated: Path) -> None:
    from flows.messages import ImpatientWorkflow

    marker = isolated / "noticed"
    result = asyncio.run(
        workflows.execute_workflow(ImpatientWorkflow, {"marker": str(marker)}, execution_id="i")
    )
    assert result == "gave up"
    wait_for_file(marker)  # the thread saw activity_info().is_cancelled() and returned


# -- update ---------------------------------------------------------------------------------

CART = f"{wf('messages')}:CartWorkflow"


def test_an_update_changes_the_run_and_answers_its_sender(home: Path) -> None:
    assert cli("start", CART, "--run-id", "c").exit_code == 75
    answered = cli("update", "c", "set_quantity", '{"quantity": 3}')
    assert answered.exit_code == 0, answered.output
    assert orjson.loads(answered.stdout) == 3
    kinds = [e["type"] for e in events(home, "c")]
    assert kinds.count("UpdateAccepted") == kinds.count("UpdateCompleted") == 1
    done = cli("signal", "c", "checkout")
    assert orjson.loads(done.stdout) == 3


def test_a_refused_update_is_recorded_as_refused_and_changes_nothing(home: Path) -> None:
    cli("start", CART, "--run-id", "c")
    refused = cli("update", "c", "set_quantity", '{"quantity": 0}')
    assert refused.exit_code == 1
    assert "refused: ValueError: quantity must be 1 or more" in refused.stderr
    [answer] = [e for e in events(home, "c") if e["type"] == "UpdateCompleted"]
    assert answer["rejected"] is True
    assert not [e for e in events(home, "c") if e["type"] == "UpdateAccepted"]
    assert orjson.loads(cli("signal", "c", "checkout").stdout) == 1  # unchanged


def test_updates_from_python_answer_or_raise(home: Path) -> None:
    from flows.messages import CartWorkflow

    async def scenario() -> int:
        with pytest.raises(workflows.WfrunError, match="WAITING"):
            await workflows.execute_workflow(CartWorkflow, execution_id="py")
        with pytest.raises(workflows.WorkflowError, match="refused"):
            await workflows.update_workflow("py", "set_quantity", {"quantity": -2})
        return await workflows.update_workflow("py", "set_quantity", {"quantity": 5})

    assert asyncio.run(scenario()) == 5


def test_a_message_today_s_code_has_no_handler_for_is_skipped_not_fatal(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from wfrun.local.inbox import Inbox
    from wfrun.local.store import RunStore

    waiting_run()
    Inbox(RunStore(), "a").post("signal", "retired", b"{}", "2026-01-01T00:00:00Z")
    result = cli("resume", "a")
    assert result.exit_code == 75, result.output  # still waiting for its approval
    assert "no such signal" in caplog.text
    assert not [e for e in events(home, "a") if e["type"] == "SignalReceived"]


def test_each_message_finds_the_runs_code_without_resolving_every_loaded_module(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every message loads the run's TARGET again: once the file is imported, finding it must
    not resolve the path of each of the process's hundreds of modules (that was ~8 ms of each
    signal, ten times its fsync'd post)."""
    from wfrun.loader import load

    load(APPROVAL)
    resolved: list[Path] = []
    real_resolve = Path.resolve

    def resolve(self: Path, strict: bool = False) -> Path:
        resolved.append(self)
        return real_resolve(self, strict)

    monkeypatch.setattr(Path, "resolve", resolve)
    assert load(APPROVAL).name == "approval"
    assert len(resolved) == 1  # the TARGET's own path


STRUCTURED = f"{wf('messages')}:StructuredMessages"


def test_a_handler_taking_one_dataclass_or_model_takes_its_fields(home: Path) -> None:
    assert cli("start", STRUCTURED, "--run-id", "s").exit_code == 75
    updated = cli("update", "s", "set_quantity", '{"quantity": 3}')
    assert orjson.loads(updated.stdout) == 3, updated.output
    signalled = cli("signal", "s", "approve", '{"approver": "ada", "note": "fine"}')
    assert orjson.loads(signalled.stdout) == "ada (fine) x3", signalled.output


def test_a_handler_taking_one_model_still_takes_it_by_its_argument_name(home: Path) -> None:
    cli("start", STRUCTURED, "--run-id", "s")
    signalled = cli("signal", "s", "approve", '{"approval": {"approver": "bob"}}')
    assert orjson.loads(signalled.stdout) == "bob () x0", signalled.output


def test_a_model_field_that_does_not_fit_is_refused_before_anything_is_sent(home: Path) -> None:
    cli("start", STRUCTURED, "--run-id", "s")
    refused = cli("update", "s", "set_quantity", '{"quantity": "many"}')
    assert refused.exit_code == 2
    assert "change.quantity: Input should be a valid integer" in refused.stderr
    assert not (home / "inbox" / "s.jsonl").exists()


NAMED_LIKE_ITS_FIELD = """
    from pydantic import BaseModel

    import wfrun as workflows


    class Quantity(BaseModel):
        quantity: int
        note: str = ""


    @workflows.workflow.define(name="named_like_its_field")
    class NamedLikeItsField:
        def __init__(self) -> None:
            self.quantity = 0

        @workflows.workflow.entrypoint
        async def run(self) -> int:
            await workflows.workflow.wait_condition(lambda: self.quantity > 0)
            return self.quantity

        @workflows.workflow.signal
        def set_quantity(self, quantity: Quantity) -> None:
            self.quantity = quantity.quantity
"""


def test_a_model_with_a_field_named_like_the_parameter_still_takes_its_fields(
    isolated: Path,
) -> None:
    module = write_module(isolated / "named.py", NAMED_LIKE_ITS_FIELD)
    assert cli("start", f"{module}:NamedLikeItsField", "--run-id", "q").exit_code == 75
    # The model's fields, as SPEC section 4 says; not the argument ``quantity`` given 3.
    signalled = cli("signal", "q", "set_quantity", '{"quantity": 3}')
    assert signalled.exit_code == 0, signalled.output
    assert orjson.loads(signalled.stdout) == 3
