"""Big data goes by reference: each activity input and output is limited to 2 MiB of JSON.

    wfrun start samples/large_report.py:LargeReportWorkflow --arg rows=100000

``build_report`` writes its 100,000-row report to ``reports/`` and returns the file's path and a
summary: the history stays small and the next activity reads the file. ``build_report_inline``
returns the rows themselves; over the limit it fails at once (no retry: it would be just as
big) with a ``PayloadTooLargeError`` naming the activity, the side and the size, which this
workflow catches to show the message. The limit can be raised explicitly with
``--max-payload``, ``WFRUN_MAX_PAYLOAD`` or ``@activity(max_payload=...)``, never silently.
"""

import json
from pathlib import Path

import wfrun as workflows


def _rows(count: int) -> list[dict]:
    return [
        {"id": i, "region": ["north", "south", "east", "west"][i % 4], "amount": i % 997}
        for i in range(count)
    ]


@workflows.activity
async def build_report(rows: int) -> dict:
    path = Path("reports") / f"report-{rows}.json"
    path.parent.mkdir(exist_ok=True)
    data = _rows(rows)
    path.write_text(json.dumps(data))
    return {"path": str(path), "rows": len(data), "bytes": path.stat().st_size}


@workflows.activity
async def total_by_region(path: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in json.loads(Path(path).read_text()):
        totals[row["region"]] = totals.get(row["region"], 0) + row["amount"]
    return totals


@workflows.activity
async def build_report_inline(rows: int) -> list[dict]:
    return _rows(rows)


@workflows.workflow.define(name="large_report")
class LargeReportWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, rows: int) -> dict:
        report = await build_report(rows)
        totals = await total_by_region(report["path"])
        try:
            await build_report_inline(rows)
            inline = "fits"
        except workflows.PayloadTooLargeError as exc:
            inline = str(exc)
        return {"report": report, "totals": totals, "inline": inline}
