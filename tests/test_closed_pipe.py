"""A reader that closes the pipe early (``wfrun history RUN | head``): the commands that only
show something stop there quietly and exit 0, so that ``set -o pipefail`` sees no failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_streaming_reads import write_history

from conftest import run_wfrun, write_module

STEPS = 3_000  # 9,002 rows: far more than a pipe holds, so the writer meets the closed end


def wfrun_into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """``wfrun ARGS`` writing into a pipe whose reading end is closed before it starts."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "wfrun", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [
        ["history", "long"],
        ["history", "long", "--json"],
        ["history", "long", "--follow"],
        ["history", "long", "--follow", "--json"],
        ["list"],
        ["list", "--json"],
        ["show", "long"],
        ["show", "long", "--json"],
        ["show", "long", "--event", "1"],
    ],
    ids=" ".join,
)
def test_a_reading_command_whose_reader_has_gone_stops_quietly_with_exit_0(
    home: Path, args: list[str]
) -> None:
    write_history(home, "long", steps=3)
    result = wfrun_into_a_closed_pipe(*args)
    assert (result.returncode, result.stderr) == (0, "")


def test_history_piped_into_head_exits_0_under_pipefail(home: Path) -> None:
    """What a user's script does: the reader leaves after the first rows, mid-stream."""
    write_history(home, "long", steps=STEPS)
    script = f"set -o pipefail; {sys.executable} -m wfrun history long | head -n 3"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = result.stdout.splitlines()
    assert rows[0].startswith("id\tts\ttype")
    assert [row.split("\t")[0] for row in rows[1:]] == ["1", "2"]


def test_history_json_whose_reader_leaves_mid_stream_exits_0(home: Path) -> None:
    write_history(home, "long", steps=STEPS)
    process = subprocess.Popen(
        [sys.executable, "-m", "wfrun", "history", "long", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b'{"id":1,')
    process.stdout.close()  # the reader leaves, the writer still has most of it to write
    _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr) == (0, b"")


_PIPE_QUERY = """
import os
import wfrun as workflows

@workflows.workflow.define(name="closed_pipe_query")
class PipeQuery:
    def __init__(self) -> None:
        self.done = False

    @workflows.workflow.entrypoint
    async def run(self) -> str:
        await workflows.workflow.wait_condition(lambda: self.done)
        return "ok"

    @workflows.workflow.query
    def status(self) -> str:
        read, write = os.pipe()
        os.close(read)
        try:
            os.write(write, b"status")  # a helper process that died: EPIPE, not stdout's
        finally:
            os.close(write)
        return "never"
"""


def test_a_query_whose_own_code_meets_a_broken_pipe_does_not_exit_0_silently(
    isolated: Path,
) -> None:
    """Only a reader of stdout that has gone ends a command quietly: a query handler (user
    code) meeting EPIPE on a pipe of its own, with stdout healthy, is not taken for one."""

    write_module(isolated / "pq.py", _PIPE_QUERY)
    started = run_wfrun("start", "pq.py:PipeQuery", "--run-id", "pq")
    assert started.returncode == 75, started.stderr
    asked = run_wfrun("query", "pq", "status")
    assert asked.returncode != 0 or asked.stdout.strip() or asked.stderr.strip(), asked


@pytest.mark.parametrize(
    "args",
    [["history", "long"], ["history", "long", "--json"], ["list"], ["show", "long"]],
    ids=" ".join,
)
def test_a_full_disk_on_stdout_is_an_io_error_said_in_one_line(home: Path, args: list[str]) -> None:
    """``> /dev/full`` (ENOSPC) is not taken for a reader gone: exit 74, one line on stderr
    saying why, no traceback."""
    write_history(home, "long", steps=3)
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "wfrun", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 74, result.stderr
    assert result.stderr.splitlines() == [
        "wfrun: cannot write the output: No space left on device"
    ], result.stderr
