"""The command line: start and resume, their output, their inputs and their exit codes."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import wfrun as workflows

from conftest import ROOT, attempts, backdate, cli, cut_history, run_wfrun, wf

STEPS = f"{wf('steps')}:StepsWorkflow"
GREETER = f"{wf('steps')}:GreeterWorkflow"
SAMPLE = str(ROOT / "samples" / "user_report.py") + ":UserReportWorkflow"


def runs(home: Path) -> list[str]:
    folder = home / "runs"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- output ----------------------------------------------------------------------------------


def test_start_prints_only_the_result_as_json_when_stdout_is_not_a_terminal() -> None:
    result = cli("start", STEPS, "--arg", "count=2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "[10,20]\n"


def test_start_json_prints_run_id_status_and_result() -> None:
    result = cli("start", STEPS, "--arg", "count=2", "--json", "--run-id", "j")
    assert orjson.loads(result.stdout) == {"run_id": "j", "status": "COMPLETED", "result": [10, 20]}


def test_start_json_of_a_failed_run_carries_the_error_and_exits_1() -> None:
    result = cli("start", f"{wf('steps')}:ExhaustedWorkflow", "--json", "--run-id", "f")
    assert result.exit_code == 1
    line = orjson.loads(result.stdout)
    assert line["status"] == "FAILED"
    assert line["error"]["type"] == "ActivityError"
    assert "traceback" not in line["error"]


def test_quiet_prints_only_the_result() -> None:
    result = cli("start", GREETER, "--arg", "name=Ada", "--quiet")
    assert result.stdout == '"hello Ada"\n'


def test_the_sample_runs_from_a_real_process() -> None:
    result = run_wfrun("start", SAMPLE, "--arg", "user_id=42")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {
        "user": "Ada Lovelace",
        "plan": "pro",
        "total_logins": 16,
    }


# -- inputs ----------------------------------------------------------------------------------


def test_arg_values_are_json_when_they_parse() -> None:
    result = cli("start", GREETER, "--arg", "name=Ada", "--arg", "times=2", "--arg", "loud=true")
    assert result.stdout == '"HELLO ADA HELLO ADA"\n'


def test_a_number_given_to_a_string_parameter_stays_a_string() -> None:
    result = cli("start", GREETER, "--arg", "name=42")
    assert result.stdout == '"hello 42"\n'


def test_input_takes_a_json_object_of_arguments() -> None:
    result = cli("start", GREETER, "--input", '{"name": "Ada", "times": 2}')
    assert result.stdout == '"hello Ada hello Ada"\n'


def test_input_reads_a_file_with_at(isolated: Path) -> None:
    (isolated / "in.json").write_text('{"name": "Bo"}')
    assert cli("start", GREETER, "--input", "@in.json").stdout == '"hello Bo"\n'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing argument 'name'"),
        (
            ["--arg", "name=Ada", "--arg", "color=red"],
            "has no parameter 'color'; it takes: name, times, loud",
        ),
        (["--arg", "name=Ada", "--arg", "times=many"], "times: Input should be a valid integer"),
        (["--arg", "nameAda"], "is not NAME=VALUE"),
        (["--input", "{not json"], "--input is not valid JSON"),
        (["--input", "[1, 2]"], "--input must be a JSON object"),
        (["--input", "@missing.json"], "cannot read missing.json"),
        (["--arg", "name=Ada", "--max-payload", "lots"], "is not a size"),
    ],
)
def test_a_bad_input_names_the_parameter_exits_2_and_creates_no_run(
    home: Path, args: list[str], message: str
) -> None:
    result = cli("start", GREETER, *args)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert runs(home) == []


def test_an_oversized_workflow_input_is_bad_input(home: Path) -> None:
    result = cli("start", GREETER, "--arg", "name=" + "x" * 2000, "--max-payload", "1KiB")
    assert result.exit_code == 2
    assert "input of workflow 'greeter' is 2 KiB" in result.stderr
    assert runs(home) == []


# -- targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere/missing.py:Wf", "the file"),
        ("no_such_module_xyz:Wf", "no module named 'no_such_module_xyz'"),
        (
            f"{wf('targets')}:Missing",
            "has no workflow 'Missing' "
            "(workflows here: Impostor ('Original'), Original ('renamed'), Plain)",
        ),
        (f"{wf('targets')}:an_activity", "names an activity, not a workflow"),
        (f"{wf('targets')}:NotAWorkflow", "names a class that is not a workflow"),
        (f"{wf('targets')}:Original", "is ambiguous"),
        (f"{wf('broken')}:Wf", "RuntimeError: configuration missing: set API_URL"),
        ("justaword", "should be module:Workflow or path/to/file.py:Workflow"),
    ],
)
def test_a_bad_target_is_explained_and_exits_2(home: Path, target: str, message: str) -> None:
    result = cli("start", target)
    assert result.exit_code == 2
    assert message in result.stderr
    assert runs(home) == []


def test_a_workflow_is_found_by_its_defined_name_too() -> None:
    assert cli("start", f"{wf('targets')}:renamed").stdout == '"original"\n'
    assert cli("start", f"{wf('targets')}:Plain").stdout == '"plain"\n'


def test_a_module_target_is_imported_from_the_current_directory(isolated: Path) -> None:
    package = isolated / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(
        "import wfrun as workflows\n"
        "@workflows.workflow.define\n"
        "class Hello:\n"
        "    @workflows.workflow.entrypoint\n"
        "    async def run(self) -> str:\n"
        "        return 'hi'\n"
    )
    result = run_wfrun("start", "app.flows:Hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == '"hi"\n'


# -- idempotent start ------------------------------------------------------------------------


def test_start_with_the_run_id_of_a_completed_run_prints_its_result_and_runs_nothing(
    log: Path,
) -> None:
    first = cli("start", STEPS, "--arg", "count=2", "--run-id", "nightly")
    again = cli("start", STEPS, "--arg", "count=2", "--run-id", "nightly")
    assert again.exit_code == 0
    assert again.stdout == first.stdout == "[10,20]\n"
    assert attempts(log, "step1") == 1


def test_start_with_the_run_id_of_an_unfinished_run_resumes_it(log: Path) -> None:
    cli("start", STEPS, "--arg", "count=3", "--run-id", "nightly")
    cut_history("nightly", keep=4)
    again = cli("start", STEPS, "--arg", "count=3", "--run-id", "nightly")
    assert again.exit_code == 0, again.stderr
    assert again.stdout == "[10,20,30]\n"
    assert [attempts(log, f"step{n}") for n in (1, 2, 3)] == [1, 2, 2]


# -- resume ----------------------------------------------------------------------------------


def test_resume_of_a_completed_run_prints_its_result_and_writes_nothing(home: Path) -> None:
    cli("start", STEPS, "--arg", "count=2", "--run-id", "done")
    before = (home / "runs" / "done.jsonl").read_bytes()
    result = cli("resume", "done")
    assert (result.exit_code, result.stdout) == (0, "[10,20]\n")
    assert (home / "runs" / "done.jsonl").read_bytes() == before


def test_resume_of_a_failed_run_exits_1() -> None:
    cli("start", f"{wf('steps')}:ExhaustedWorkflow", "--run-id", "bad")
    assert cli("resume", "bad").exit_code == 1


@pytest.mark.parametrize("command", ["resume", "history", "show", "replay"])
def test_an_unknown_run_id_exits_4(command: str) -> None:
    result = cli(command, "nope")
    assert result.exit_code == 4
    assert "no run 'nope'" in result.stderr


def test_resume_needs_a_run_id_or_all() -> None:
    assert cli("resume").exit_code == 2
    assert cli("resume", "x", "--all").exit_code == 2


def test_resume_all_continues_every_interrupted_run(log: Path) -> None:
    for run_id in ("a", "b", "c"):
        cli("start", STEPS, "--arg", "count=3", "--run-id", run_id)
    cut_history("a", keep=4)
    cut_history("b", keep=7)
    result = cli("resume", "--all", "--json")
    assert result.exit_code == 0, result.stderr
    assert {(line["run_id"], line["status"]) for line in orjson.loads(result.stdout)} == {
        ("a", "COMPLETED"),
        ("b", "COMPLETED"),
    }
    assert attempts(log, "step1") == 3


def test_resume_all_exits_with_the_most_serious_code() -> None:
    cli("start", STEPS, "--arg", "count=3", "--run-id", "ok")
    cli("start", f"{wf('steps')}:ExhaustedWorkflow", "--run-id", "bad")
    cut_history("ok", keep=4)
    cut_history("bad", keep=3)
    result = cli("resume", "--all")
    assert result.exit_code == 1
    assert "ok COMPLETED" in result.stdout
    assert "bad FAILED" in result.stdout


def test_resume_all_with_nothing_to_do_exits_0() -> None:
    result = cli("resume", "--all")
    assert result.exit_code == 0
    assert "no run to go on with" in result.stderr


def test_resume_all_json_with_nothing_to_do_prints_an_empty_list() -> None:
    result = cli("resume", "--all", "--json")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == []


# -- execution timeout -----------------------------------------------------------------------


def test_a_run_past_its_execution_timeout_ends_timed_out_and_cancels_what_runs(log: Path) -> None:
    result = cli(
        "start", f"{wf('steps')}:DeadlineWorkflow", "--arg", "count=5", "--json", "--run-id", "late"
    )
    assert result.exit_code == 1
    line = orjson.loads(result.stdout)
    assert line["status"] == "TIMED_OUT"
    assert "execution_timeout of 0.3s" in line["error"]["message"]
    assert attempts(log, "step1") == 1
    assert attempts(log, "step3") == 0  # 0.4 s in at the earliest: past the 0.3 s deadline
    listed = orjson.loads(cli("list", "--json").stdout)
    assert listed[0]["status"] == "TIMED_OUT"
    kinds = [orjson.loads(x)["type"] for x in cli("history", "late", "--json").stdout.splitlines()]
    assert kinds[-2:] == ["ActivityCanceled", "WorkflowTimedOut"]


def test_a_resume_past_the_deadline_times_out_before_running_anything(log: Path) -> None:
    cli("start", f"{wf('steps')}:DeadlineWorkflow", "--arg", "count=2", "--run-id", "late")
    cut_history("late", keep=4)  # what followed step 1 was never recorded
    backdate("late", 3600)  # it was started an hour ago: far past its 0.3 s
    ran = (attempts(log, "step1"), attempts(log, "step2"))
    result = cli("resume", "late", "--json")
    assert orjson.loads(result.stdout)["status"] == "TIMED_OUT"
    assert (attempts(log, "step1"), attempts(log, "step2")) == ran  # the resume ran nothing


def test_a_run_that_finished_its_work_before_the_deadline_completes_on_resume(log: Path) -> None:
    cli("start", f"{wf('steps')}:DeadlineWorkflow", "--arg", "count=0", "--run-id", "early")
    cut_history("early", keep=1)  # it had nothing to do; its completion was never recorded
    backdate("early", 3600)  # it was started an hour ago: far past its 0.3 s
    result = cli("resume", "early", "--json")
    assert orjson.loads(result.stdout)["status"] == "COMPLETED"


def test_version_prints_wfrun_s_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"wfrun {workflows.__version__}\n"
