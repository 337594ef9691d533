"""The README's cron and shell recipes do what the README says, against real runs.

`samples/wfrun_job.sh` is the README's shell script (the README holds it verbatim); each test
makes wfrun end with one exit code and checks the branch the script takes.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from conftest import ROOT, cut_history, spawn_wfrun, wait_for_marker, wf

SCRIPT = ROOT / "samples" / "wfrun_job.sh"
USER_REPORT = f"{ROOT / 'samples' / 'user_report.py'}:UserReportWorkflow"
WFRUN = [sys.executable, "-m", "wfrun"]

pytestmark = pytest.mark.slow


def job(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``samples/wfrun_job.sh python -m wfrun ARGS...``, as cron would run it."""
    return subprocess.run(
        ["sh", str(SCRIPT), *WFRUN, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def readme_block(marker: str) -> str:
    """The fenced block that follows ``<!-- marker -->`` in the README."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {re.escape(marker)} -->\n```\w*\n(.*?)```\n", readme, re.DOTALL)
    assert found, f"README.md has no block after <!-- {marker} -->"
    return found.group(1)


def hold_a_run(log: Path, run_id: str) -> subprocess.Popen[str]:
    """A live process executing ``run_id``, held inside its first activity."""
    process = spawn_wfrun(
        "start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=1", "--run-id", run_id,
        env={"WFRUN_TEST_HOLD": "step1"},
    )  # fmt: skip
    for _ in range(600):
        if (log / "step1.log").exists():
            return process
        time.sleep(0.05)
    process.kill()
    pytest.fail("the held run never reached its activity")


def release(log: Path, process: subprocess.Popen[str]) -> None:
    (log / "step1.release").touch()
    process.communicate(timeout=60)


def test_the_readme_shows_the_shell_script_verbatim() -> None:
    assert readme_block("samples/wfrun_job.sh") == SCRIPT.read_text()


def test_the_job_script_exits_0_with_the_result_when_the_run_completes() -> None:
    result = job("start", USER_REPORT, "--arg", "user_id=42")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["user"] == "Ada Lovelace"


def test_the_job_script_exits_0_and_says_so_when_the_run_waits() -> None:
    approval = f"{ROOT / 'samples' / 'approval.py'}:ExpenseApproval"
    result = job("start", approval, "--arg", "amount=420", "--run-id", "exp")
    assert result.returncode == 0, result.stderr
    assert "wfrun-job: waiting" in result.stderr


def test_the_job_script_exits_0_when_another_process_runs_the_run(log: Path) -> None:
    held = hold_a_run(log, "held")
    try:
        result = job("resume", "held")
    finally:
        release(log, held)
    assert result.returncode == 0, result.stderr
    assert "another process is running it" in result.stderr


def test_the_job_script_passes_on_1_when_the_workflow_fails() -> None:
    result = job("start", USER_REPORT, "--arg", "user_id=7")
    assert result.returncode == 1
    assert "the workflow FAILED" in result.stderr


def test_the_job_script_passes_on_2_for_bad_input() -> None:
    result = job("start", USER_REPORT, "--arg", "nobody=1")
    assert result.returncode == 2
    assert "bad command, input or run id" in result.stderr


def test_the_job_script_passes_on_3_when_the_code_must_be_fixed(isolated: Path) -> None:
    (isolated / "buggy.py").write_text(
        "import wfrun as workflows\n\n"
        "@workflows.workflow.define(name='buggy')\n"
        "class Buggy:\n"
        "    @workflows.workflow.entrypoint\n"
        "    async def run(self) -> str:\n"
        "        return {}['typo']\n"
    )
    result = job("start", f"{isolated / 'buggy.py'}:Buggy")
    assert result.returncode == 3
    assert "BLOCKED: fix the workflow code" in result.stderr


def test_the_job_script_passes_on_4_for_an_unknown_run() -> None:
    result = job("resume", "nosuchrun")
    assert result.returncode == 4
    assert "bad command, input or run id" in result.stderr


def test_the_job_script_passes_on_6_for_a_damaged_history() -> None:
    assert job("start", USER_REPORT, "--arg", "user_id=42", "--run-id", "d").returncode == 0
    path = cut_history("d", keep=2)
    path.write_bytes(path.read_bytes().replace(b'"42"', b'"43"', 1) + b'{"id":3}\n')
    result = job("resume", "d")
    assert result.returncode == 6, result.stderr
    assert "a history file is damaged" in result.stderr


def test_the_job_script_passes_on_74_when_history_cannot_be_trusted(home: Path) -> None:
    assert job("start", USER_REPORT, "--arg", "user_id=42", "--run-id", "w").returncode == 0
    (home / "runs").chmod(0o777)  # a runs folder others may write to
    result = job("resume", "w")
    assert result.returncode == 74, result.stderr
    assert "could not be read or written" in result.stderr


def test_the_job_script_passes_on_130_when_wfrun_is_interrupted(log: Path) -> None:
    script = subprocess.Popen(
        ["sh", str(SCRIPT), *WFRUN, "start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WFRUN_TEST_HOLD": "step1"},
    )
    children = Path(f"/proc/{script.pid}/task/{script.pid}/children")
    if not children.exists():
        script.kill()
        pytest.skip("needs /proc/PID/task/PID/children (Linux) to find wfrun's process")
    wait_for_marker(script, log, "step1")
    os.kill(int(children.read_text().split()[0]), signal.SIGTERM)  # wfrun, not the script
    _, stderr = script.communicate(timeout=60)
    assert script.returncode == 130, stderr
    assert "interrupted: the next 'wfrun resume --all' continues it" in stderr


def crontab_command(folder: Path) -> str:
    """The README's crontab line's command, for an app in ``folder``."""
    line = readme_block("crontab").strip().splitlines()[-1]
    command = line.split(None, 5)[5]  # after the five time fields
    command = command.replace("/srv/app/.venv/bin/wfrun", " ".join(WFRUN))
    return command.replace("/srv/app", str(folder))


@pytest.fixture
def cron_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """cron's environment, as far as wfrun cares: no $WFRUN_HOME (runs are in ./.wfrun)."""
    if shutil.which("flock") is None:
        pytest.skip("flock(1) is not installed (it comes with util-linux)")
    monkeypatch.delenv("WFRUN_HOME")
    return dict(os.environ)


def test_the_crontab_line_resumes_every_run_that_can_go_on(
    isolated: Path, cron_env: dict[str, str]
) -> None:
    assert job("start", USER_REPORT, "--arg", "user_id=42", "--run-id", "c").returncode == 0
    path = isolated / ".wfrun" / "runs" / "c.jsonl"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:4]))  # a crash
    cron = subprocess.run(["sh", "-c", crontab_command(isolated)], env=cron_env, timeout=120)
    assert cron.returncode == 0
    assert re.search(r"^c\s+COMPLETED", (isolated / "wfrun.log").read_text(), re.MULTILINE)


def test_the_crontab_line_does_nothing_while_the_previous_minute_still_runs(
    isolated: Path, cron_env: dict[str, str]
) -> None:
    assert job("start", USER_REPORT, "--arg", "user_id=42", "--run-id", "c").returncode == 0
    path = isolated / ".wfrun" / "runs" / "c.jsonl"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:4]))
    command = crontab_command(isolated)
    lock_file = isolated / re.search(r"flock -n (\S+)", command).group(1)  # type: ignore[union-attr]
    with lock_file.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the previous minute's wfrun resume --all
        cron = subprocess.run(["sh", "-c", command], env=cron_env, timeout=120)
    assert cron.returncode == 1  # flock -n: the lock is taken, nothing was run
    assert (isolated / "wfrun.log").read_text() == ""
    assert len(path.read_bytes().splitlines()) == 4
