"""Rewrite the saved histories in this folder from today's code, after an intended format change.

    python tests/histories/regenerate.py

Each workflow that tests/test_golden_histories.py replays runs once in a scratch wfrun home
(the golden one on the same fake clock as the writer test), and its history is copied here over
the saved one. Then bump FORMAT_VERSION in wfrun/events.py, and read the diff before committing.

A script, not a test: a test run must never write into the tree.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

HISTORIES = Path(__file__).resolve().parent
TESTS = HISTORIES.parent


def regenerate(scratch: Path) -> list[Path]:
    """Run each golden workflow with ``scratch`` as its home; copy the histories here."""
    os.environ["WFRUN_HOME"] = str(scratch / "home")
    os.environ["WFRUN_TEST_LOG"] = str(scratch)
    os.environ["WFRUN_TEST_DELAYS"] = '{"later": 0.0}'
    os.environ.pop("WFRUN_MAX_PAYLOAD", None)
    sys.path.insert(0, str(TESTS))  # flows/ and the test module, as pytest imports them

    from test_golden_histories import (
        GOLDEN,
        SPECIAL,
        fresh_approval_run,
        fresh_blocked_run,
        fresh_canceled_run,
        fresh_golden_run,
        fresh_updated_run,
        fresh_waiting_run,
    )

    import wfrun as workflows
    from wfrun.local.store import RunStore

    written = [Path(shutil.copy(fresh_golden_run(), HISTORIES / "golden.jsonl"))]
    written.append(Path(shutil.copy(fresh_waiting_run(), HISTORIES / "overnight.jsonl")))
    written.append(Path(shutil.copy(fresh_approval_run(), HISTORIES / "approval.jsonl")))
    written.append(Path(shutil.copy(fresh_canceled_run(), HISTORIES / "canceled.jsonl")))
    written.append(Path(shutil.copy(fresh_updated_run(), HISTORIES / "updated.jsonl")))
    written.append(Path(shutil.copy(fresh_blocked_run(), HISTORIES / "blocked.jsonl")))
    for name, workflow in GOLDEN.items():
        if name not in SPECIAL:
            run_id = name.removesuffix(".jsonl")
            asyncio.run(workflows.execute_workflow(workflow, execution_id=run_id))
            written.append(Path(shutil.copy(RunStore().path(run_id), HISTORIES / name)))
    return written


def main() -> None:
    back = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # the runs record where they ran: not in the tree
        try:
            written = regenerate(Path(scratch))
        finally:
            os.chdir(back)
    for path in written:
        print(f"wrote {path.relative_to(TESTS.parent)}")


if __name__ == "__main__":
    main()
