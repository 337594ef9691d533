"""``wfrun resume --all``: each run in a process of its own, with a time limit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from conftest import attempts, cli, cut_history, run_wfrun, spawn_wfrun, wait_for_file, wf

pytestmark = pytest.mark.slow

PROJECT = """
    import wfrun as workflows

    @workflows.activity
    async def whoami() -> str:
        return {name!r}

    @workflows.workflow.define(name="who")
    class Who:
        @workflows.workflow.entrypoint
        async def run(self) -> str:
            return await whoami()
"""


def test_two_projects_with_a_module_of_the_same_name_each_run_their_own_code(
    isolated: Path,
) -> None:
    for name in ("alpha", "beta"):
        project = isolated / name
        project.mkdir()
        (project / "flows.py").write_text(textwrap.dedent(PROJECT.format(name=name)))
        started = subprocess.run(  # a module TARGET, found from the project's own folder
            [sys.executable, "-m", "wfrun", "start", "flows:Who", "--run-id", name],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert orjson.loads(started.stdout) == name, started.stderr
        cut_history(name, keep=1)
    result = run_wfrun("resume", "--all", "--json")
    assert result.returncode == 0, result.stderr
    assert {line["run_id"]: line["result"] for line in orjson.loads(result.stdout)} == {
        "alpha": "alpha",
        "beta": "beta",
    }


def test_a_run_past_the_time_limit_is_stopped_resumably_and_the_others_finish(
    isolated: Path, log: Path
) -> None:
    markers = isolated / "markers"
    markers.mkdir()
    held = f"{wf('faults')}:HeldWorkflow"
    process = spawn_wfrun("start", held, "--arg", f"marker_dir={markers}", "--run-id", "slow")
    wait_for_file(markers / "started1", process)
    process.kill()
    process.wait()
    assert run_wfrun("start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=2").returncode == 0
    cut_history(_only_other_run(isolated, "slow"), keep=1)

    result = run_wfrun("resume", "--all", "--json", "--time-limit", "3")
    assert result.returncode == 130, result.stderr
    reports = {line["run_id"]: line for line in orjson.loads(result.stdout)}
    assert reports["slow"]["status"] == "INTERRUPTED"
    assert "time limit of 3s" in reports["slow"]["reason"]
    assert {line["status"] for run_id, line in reports.items() if run_id != "slow"} == {"COMPLETED"}
    assert attempts(log, "held") == 2  # started again by resume --all, then stopped
    (markers / "release").touch()
    assert run_wfrun("resume", "slow", "--quiet").returncode == 0


def _only_other_run(isolated: Path, known: str) -> str:
    [other] = [p.stem for p in (isolated / "home" / "runs").glob("*.jsonl") if p.stem != known]
    return other


def test_a_file_planted_in_the_current_folder_is_not_run(isolated: Path) -> None:
    marker = isolated / "hijacked"
    (isolated / "_wfrun_launcher.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    assert run_wfrun("start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=1").returncode == 0
    cut_history(_only_other_run(isolated, ""), keep=1)
    result = run_wfrun("resume", "--all", "--json")
    assert result.returncode == 0, result.stderr
    assert [line["status"] for line in orjson.loads(result.stdout)] == ["COMPLETED"]
    assert not marker.exists()


def test_what_a_run_prints_or_leaves_running_does_not_spoil_its_report(isolated: Path) -> None:
    chatty = f"{wf('faults')}:ChattyWorkflow"
    started = cli("start", chatty, "--arg", f"marker_dir={isolated}", "--run-id", "c")
    assert started.exit_code == 0, started.output
    cut_history("c", keep=1)
    result = run_wfrun("resume", "--all", "--json", "--time-limit", "20", timeout=120)
    assert result.returncode == 0, result.stderr
    [line] = orjson.loads(result.stdout)
    assert (line["status"], line["result"]) == ("COMPLETED", "done")
