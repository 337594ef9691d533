"""Events into rich renderables: the history table, the live view, the run list and summary.

Pure: every function takes events (or run infos) and returns something rich can print; nothing
here prints, reads files or looks at the clock (the live view is handed ``now``).

Everything that comes from a history or a user's value is text, never instructions to the
terminal: it goes through `safe` (control characters shown as escapes) into a `Text`, which
rich never parses for markup. Only wfrun's own labels carry styles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import Failure
from ..events import (
    TERMINAL,
    ActivityCanceled,
    ActivityCompleted,
    ActivityFailed,
    ActivityHeartbeat,
    ActivityScheduled,
    ActivityStarted,
    ActivityTimedOut,
    CancelRequested,
    ChildWorkflowCancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Event,
    ForeignEvent,
    MarkerRecorded,
    RunBlocked,
    RunResumed,
    RunWaiting,
    SignalReceived,
    StepEvent,
    TimerCanceled,
    TimerFired,
    TimerStarted,
    WorkflowCanceled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowTimedOut,
    parse_ts,
)
from ..payload import abbreviate, plain
from ..runs import RunInfo, RunStatus

_STYLES = {
    "WorkflowStarted": "bold",
    "RunResumed": "bold cyan",
    "RunWaiting": "bold blue",
    "RunBlocked": "bold red",
    "CancelRequested": "bold yellow",
    "WorkflowCanceled": "bold yellow",
    "SignalReceived": "bold magenta",
    "WorkflowCompleted": "bold green",
    "WorkflowFailed": "bold red",
    "WorkflowTimedOut": "bold red",
    "ActivityCompleted": "green",
    "ActivityFailed": "red",
    "ActivityTimedOut": "yellow",
    "ActivityCanceled": "dim",
    "ChildWorkflowCompleted": "green",
    "ChildWorkflowFailed": "red",
    "WorkflowContinuedAsNew": "bold green",
    "TimerCanceled": "dim",
    "ActivityHeartbeat": "dim",
    "MarkerRecorded": "magenta",
}

STATUS_STYLES = {
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "red",
    RunStatus.TIMED_OUT: "red",
    RunStatus.RUNNING: "cyan",
    RunStatus.INTERRUPTED: "yellow",
    RunStatus.WAITING: "blue",
    RunStatus.DAMAGED: "bold red",
    RunStatus.CANCELED: "yellow",
    RunStatus.BLOCKED: "bold red",
    RunStatus.CONTINUED_AS_NEW: "green",
}


#: Control characters (C0 but tab and newline, DEL, C1) and the invisible bidirectional
#: controls that can make a terminal act or text read differently than it is.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(value: object) -> str:
    """``value`` as text a terminal shows and never acts on: ``\x1b`` for an escape character."""
    return _UNSAFE.sub(_escaped, str(value))


def inline(value: object) -> str:
    """``value`` as text to put inside rich markup: `safe`, and its brackets escaped."""
    return escape(safe(value))


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def text(value: object, style: str = "") -> Text:
    """A user's or a history's value as a renderable: escaped (`safe`), never markup."""
    return Text(safe(value), style=style)


def safe_json(data: bytes) -> bytes:
    """JSON with the C1 and bidirectional controls it holds raw written as ``\\u`` escapes.

    The same JSON values; JSON already escapes every other control character.
    """
    if data.isascii():
        return data
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", data.decode()).encode()


def duration_text(seconds: float | None) -> str:
    """``12 ms``, ``1.20 s``, ``3 min 05 s``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _clock(ts: str) -> str:
    return ts[11:23]


# -- the history table -----------------------------------------------------------------------


class _Names:
    """Activity and timer names by command number, learned while walking the events."""

    def __init__(self) -> None:
        self._by_seq: dict[int, str] = {}

    def learn(self, event: Event) -> None:
        if isinstance(event, ActivityScheduled):
            self._by_seq[event.seq] = f"{event.name}#{event.seq}"
        elif isinstance(event, TimerStarted):
            self._by_seq[event.seq] = f"timer#{event.seq}"
        elif isinstance(event, MarkerRecorded):
            self._by_seq[event.seq] = f"{event.name}#{event.seq}"
        elif isinstance(event, ChildWorkflowStarted):
            self._by_seq[event.seq] = f"{event.workflow}#{event.seq}"

    def of(self, event: Event) -> str:
        if not isinstance(event, StepEvent):
            return ""
        return self._by_seq.get(event.seq) or f"#{event.seq}"


#: Below this many columns, tables drop and merge columns so that a row stays on one line.
NARROW: Final = 100
#: How much of a payload a plain (tab-separated) row shows; ``--json`` has it whole.
PLAIN_WIDTH: Final = 200


#: The header of the plain (tab-separated) history rows.
HISTORY_HEADER: Final = ("id", "ts", "type", "step", "attempt", "duration_s", "detail")


class HistoryRows:
    """Turns events into rows of the history table, remembering names across calls."""

    def __init__(self, width: int = 60, *, narrow: bool = False) -> None:
        self._names = _Names()
        self._width = width
        self._narrow = narrow

    def row(self, event: Event) -> list[RenderableType]:
        self._names.learn(event)
        style = _STYLES.get(event.type, "")
        attempt = str(getattr(event, "attempt", "") or "")
        took = duration_text(getattr(event, "duration", None))
        shown = detail(event, self._width)
        if self._narrow:
            merged = [f"attempt {attempt}" if attempt else "", took, shown]
            shown = " · ".join(part for part in merged if part)
        return [
            str(event.id),
            text(_clock(event.ts)[:8] if self._narrow else _clock(event.ts)),
            Text(event.type, style=style),
            text(self._names.of(event)),
            *([] if self._narrow else [attempt, took]),
            text(shown, style=style if "Failed" in event.type else ""),
        ]

    def plain(self, event: Event) -> str:
        """The event as one tab-separated line, for a pipe or a file (see `HISTORY_HEADER`).

        `plain_row` of those fields, written out: a long history prints one per event. The id,
        the type and the numbers hold no tab, newline or control character (they were checked
        as the event was read).
        """
        self._names.learn(event)
        took = getattr(event, "duration", None)
        return safe(
            f"{event.id}\t{_one_line(event.ts)}\t{event.type}\t{_one_line(self._names.of(event))}"
            f"\t{getattr(event, 'attempt', '') or ''}\t{'' if took is None else f'{took:.3f}'}"
            f"\t{_one_line(detail(event, PLAIN_WIDTH))}"
        )


def plain_row(*fields: object) -> str:
    """Fields as one tab-separated line: a tab or newline in a value is written ``\\t``, ``\\n``."""
    # One `safe` pass over the joined line: it leaves tabs alone, and the escapes added here
    # are safe text (long histories print a row per event: this is most of the cost).
    return safe("\t".join(map(_one_line, fields)))


def _one_line(value: object) -> str:
    shown = value if type(value) is str else str(value)
    if "\t" in shown or "\n" in shown:
        return shown.replace("\t", "\\t").replace("\n", "\\n")
    return shown


@dataclass(frozen=True, slots=True)
class Column:
    """A column of `AlignedRows`."""

    header: str
    right: bool = False
    #: The widest it may be; what does not fit is cut with "…".
    max_width: int | None = None
    #: Takes the width the other columns leave (one column: the detail).
    rest: bool = False
    #: How wide it is kept when the first chunk is not all: room for what later rows hold.
    room: int = 0


def history_header(*, narrow: bool = False) -> list[Column]:
    """The columns of the history rows on a terminal (see `history_columns` for the table)."""
    return [
        Column("id", right=True, room=7),
        Column("time (UTC)"),
        Column("type", room=len("ActivityCompleted")),
        Column("step" if narrow else "activity", max_width=20, room=14 if narrow else 20),
        *(
            []
            if narrow
            else [Column("attempt", right=True), Column("duration", right=True, room=10)]
        ),
        Column("detail", rest=True),
    ]


class AlignedRows:
    """Rows of cells in aligned columns, drawn a chunk at a time: a table that streams.

    The widths are fixed from the first chunk (the whole table, for a short history), so that
    later chunks line up with it without being held; a later cell too wide for its column is
    cut with "…". With ``more`` (the first chunk is not all), each column keeps its `room`.
    No line is wider than ``width``.
    """

    def __init__(
        self, columns: list[Column], first: list[list[RenderableType]], width: int, *, more: bool
    ) -> None:
        self.columns = columns
        self.width = width
        cells = [self._cells(row) for row in first]
        widths = []
        for index, column in enumerate(columns):
            wanted = max([len(column.header), *(c[index].cell_len for c in cells)])
            if more:
                wanted = max(wanted, column.room)
            if column.max_width is not None:
                wanted = min(wanted, column.max_width)
            widths.append(wanted)
        fixed = sum(w for w, c in zip(widths, columns, strict=True) if not c.rest)
        for index, column in enumerate(columns):
            if column.rest:  # what is left; only what it holds, when no row is to come
                left = max(width - fixed - (len(columns) - 1), 1)
                widths[index] = left if more else min(widths[index], left)
        self.widths = widths
        self.first = cells

    @staticmethod
    def _cells(row: list[RenderableType]) -> list[Text]:
        cells = []
        for cell in row:
            shown = cell if isinstance(cell, Text) else Text(safe(cell))
            if "\n" in shown.plain or "\t" in shown.plain:  # a row stays on one line
                shown = Text(_one_line(shown.plain), style=shown.style)
            cells.append(shown)
        return cells

    def header(self) -> Text:
        return self._line([Text(c.header, style="bold") for c in self.columns])

    def draw(self, rows: list[list[RenderableType]] | None = None) -> Text:
        """Rows (the first chunk when None) as lines of text, ready to print."""
        return self.draw_cells(self.first if rows is None else [self._cells(row) for row in rows])

    def draw_cells(self, cells: list[list[Text]]) -> Text:
        """Rows of `first` (a slice of it) as lines of text."""
        return Text("\n").join(self._line(row) for row in cells)

    def _line(self, cells: list[Text]) -> Text:
        line = Text()
        for index, (cell, width, column) in enumerate(
            zip(cells, self.widths, self.columns, strict=True)
        ):
            if index:
                line.append(" ")
            if cell.cell_len > width:
                cell = cell.copy()
                cell.truncate(width, overflow="ellipsis")
            pad = " " * (width - cell.cell_len)
            if column.right:
                line.append(pad)
                line.append_text(cell)
            else:
                line.append_text(cell)
                if index < len(cells) - 1:  # no trailing spaces
                    line.append(pad)
        line.truncate(self.width, overflow="ellipsis")
        return line


def detail(event: Event, width: int = 60) -> str:
    """A short description of what the event carries."""
    # The kinds a long history is made of first: each row of one asks.
    if isinstance(event, ActivityStarted):
        return ""
    if isinstance(event, ActivityScheduled):
        return abbreviate(plain(event.input), width)
    if isinstance(event, ActivityCompleted | WorkflowCompleted):
        return abbreviate(plain(event.result), width)
    if isinstance(event, WorkflowStarted):
        where = event.target.rsplit("/", 1)[-1]
        shown = f"{event.workflow} ({where}) input {abbreviate(plain(event.input), width)}"
        if event.parent:
            shown += f" · child of {event.parent}"
        if event.continued_from:
            shown += f" · continues {event.continued_from}"
        return shown
    if isinstance(event, ChildWorkflowStarted):
        return f"run {event.run_id} input {abbreviate(plain(event.input), width)}"
    if isinstance(event, ChildWorkflowCompleted):
        return f"run {event.run_id}: {abbreviate(plain(event.result), width)}"
    if isinstance(event, ChildWorkflowFailed):
        failure = Failure.from_record(event.error).describe()[:width]
        return f"run {event.run_id} {event.status}: {failure}"
    if isinstance(event, ChildWorkflowCancelRequested):
        return f"run {event.run_id} asked to cancel"
    if isinstance(event, WorkflowContinuedAsNew):
        return f"as run {event.run_id} input {abbreviate(plain(event.input), width)}"
    if isinstance(event, ActivityFailed):
        return Failure.from_record(event.error).describe()[:width] + _retry(event.retry_in)
    if isinstance(event, ActivityTimedOut):
        return f"{event.timeout} timeout of {event.limit:g} s" + _retry(event.retry_in)
    if isinstance(event, WorkflowFailed):
        return Failure.from_record(event.error).describe()[:width]
    if isinstance(event, WorkflowTimedOut):
        return f"past its execution_timeout of {event.timeout:g} s"
    if isinstance(event, ActivityHeartbeat):
        return abbreviate(event.details, width)
    if isinstance(event, TimerStarted):
        return f"{event.duration:g} s, due {_clock(event.due)}"
    if isinstance(event, MarkerRecorded):
        return abbreviate(event.value, width)
    if isinstance(event, RunWaiting):
        return event.reason
    if isinstance(event, RunBlocked):
        return Failure.from_record(event.error).describe()[:width]
    if isinstance(event, SignalReceived):
        return f"{event.name} {abbreviate(event.input, width)}"
    if isinstance(event, CancelRequested | WorkflowCanceled):
        return event.reason or ""
    if isinstance(event, RunResumed):
        return f"resumed by wfrun {event.wfrun_version}" + (
            f"; {event.repaired}" if event.repaired else ""
        )
    if isinstance(event, ForeignEvent):
        return event.detail[:width]
    return ""


def _retry(retry_in: float | None) -> str:
    return " · final" if retry_in is None else f" · retry in {duration_text(retry_in)}"


# -- the live view ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Step:
    label: str
    kind: str
    state: str = "scheduled"
    attempt: int = 0
    since: datetime | None = None
    until: datetime | None = None
    took: float | None = None
    note: str = ""


@dataclass
class RunView:
    """What a terminal shows while a run is live: one line per activity and timer."""

    run_id: str = ""
    workflow: str = ""
    started: datetime | None = None
    status: RunStatus = RunStatus.RUNNING
    steps: dict[int, _Step] = field(default_factory=dict)
    max_lines: int = 12

    def apply(self, event: Event) -> None:
        """Take one event into the view (an observer of the history writer)."""
        step = self.steps.get(event.seq) if isinstance(event, StepEvent) else None
        when = parse_ts(event.ts)
        if isinstance(event, WorkflowStarted):
            self.run_id, self.workflow, self.started = event.run_id, event.workflow, when
        elif isinstance(event, ActivityScheduled):
            self.steps[event.seq] = _Step(f"{event.name}#{event.seq}", "activity")
        elif isinstance(event, TimerStarted):
            self.steps[event.seq] = _Step(
                f"timer#{event.seq} ({event.duration:g} s)",
                "timer",
                "waiting",
                since=when,
                until=parse_ts(event.due),
            )
        elif step is None:
            if event.role == TERMINAL:
                self.status = RunStatus.after(event)
        elif isinstance(event, ActivityStarted):
            step.state, step.attempt, step.since, step.note = "running", event.attempt, when, ""
        elif isinstance(event, ActivityCompleted):
            step.state, step.took, step.note = "done", event.duration, ""
        elif isinstance(event, ActivityFailed | ActivityTimedOut):
            reason = (
                Failure.from_record(event.error).describe()
                if isinstance(event, ActivityFailed)
                else f"{event.timeout} timeout"
            )
            if event.retry_in is None:
                step.state, step.took, step.note = "failed", event.duration, reason
            else:
                step.state, step.note = "retrying", reason
                step.until = when + timedelta(seconds=event.retry_in)
        elif isinstance(event, TimerFired):
            step.state = "done"
        elif isinstance(event, ActivityCanceled | TimerCanceled):
            step.state = "cancelled"

    def renderable(self, now: datetime) -> RenderableType:
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True, max_width=60)
        steps = list(self.steps.values())
        hidden = max(0, len(steps) - self.max_lines)
        for step in steps[hidden:]:
            table.add_row(*self._line(step, now))
        elapsed = (now - self.started).total_seconds() if self.started else 0.0
        header = Text.assemble(
            (f"{safe(self.workflow)} ", "bold"),
            (f"run {safe(self.run_id)} ", "dim"),
            (self.status, STATUS_STYLES.get(self.status, "")),
            f" · {duration_text(elapsed)}",
            (f" · {hidden} earlier steps not shown" if hidden else "", "dim"),
        )
        return Group(header, table)

    def _line(self, step: _Step, now: datetime) -> list[RenderableType]:
        marks = {
            "scheduled": ("·", "dim"),
            "running": ("▶", "cyan"),
            "waiting": ("⏲", "blue"),
            "retrying": ("↻", "yellow"),
            "done": ("✓", "green"),
            "failed": ("✗", "red"),
            "cancelled": ("–", "dim"),
        }
        mark, style = marks[step.state]
        if step.state == "running" and step.since:
            timing = duration_text((now - step.since).total_seconds())
        elif step.state in ("retrying", "waiting") and step.until:
            left = max((step.until - now).total_seconds(), 0.0)
            timing = f"in {duration_text(left)}"
        else:
            timing = duration_text(step.took)
        attempt = f"attempt {step.attempt}" if step.kind == "activity" and step.attempt else ""
        note = step.note if step.state != "retrying" else f"retry after {step.note}"
        return [text(f"{mark} {step.label}", style=style), attempt, timing, text(note, "dim")]


# -- runs ------------------------------------------------------------------------------------


def runs_rows(runs: list[RunInfo], *, width: int) -> AlignedRows:
    """The runs as aligned rows (drawn in chunks by the caller). Narrower than `NARROW`
    columns, times are shorter and ``took`` is left out; the workflow's name (often in the run
    id too) takes what is left, and gives way first, then the start time, so that the run id
    and its status stay whole."""
    narrow = width < NARROW
    statuses = [_status_text(run, narrow) for run in runs]
    parents = any(run.parent for run in runs)
    show_workflow = show_started = True
    if narrow:
        # Each column takes its text and a space.
        needed = max(len(run.run_id) for run in runs) + 1 + max(map(len, statuses))
        needed += 1 + max(len(run.parent or "") for run in runs) if parents else 0
        show_started = needed + 12 <= width
        show_workflow = needed + 12 * show_started + 9 <= width
    columns = [
        Column("run id"),
        *([Column("workflow", rest=True)] if show_workflow else []),
        Column("status"),
        *([Column("started (UTC)")] if show_started else []),
        *([] if narrow else [Column("took", right=True)]),
        *([Column("parent")] if parents else []),
    ]
    rows: list[list[RenderableType]] = []
    for run, status in zip(runs, statuses, strict=True):
        took = ""
        if run.ended and run.started:
            took = duration_text((parse_ts(run.ended) - parse_ts(run.started)).total_seconds())
        started = run.started[:19].replace("T", " ")
        rows.append(
            [
                text(run.run_id),
                *([text(run.workflow)] if show_workflow else []),
                Text(safe(status), style=STATUS_STYLES.get(run.status, "")),
                *(
                    [text(started[5:16] if narrow else started, style="dim")]
                    if show_started
                    else []
                ),
                *([] if narrow else [took]),
                *([text(run.parent or "")] if parents else []),
            ]
        )
    return AlignedRows(columns, rows, width, more=False)


def _status_text(run: RunInfo, narrow: bool) -> str:
    if not run.due:
        return str(run.status)
    due = run.due[5:16] if narrow else run.due[:19]
    return f"{run.status} until {due.replace('T', ' ')}"


#: The header of the plain (tab-separated) run rows.
RUNS_HEADER: Final = ("run_id", "workflow", "status", "started", "ended", "due", "parent")


def runs_plain(run: RunInfo) -> str:
    """One run as a tab-separated line, for a pipe or a file (see `RUNS_HEADER`)."""
    return plain_row(
        run.run_id,
        run.workflow,
        run.status,
        run.started,
        run.ended or "",
        run.due or "",
        run.parent or "",
    )


def run_summary(summary: dict[str, Any]) -> RenderableType:
    """``wfrun show``: the fields of `summarize` as a two-column grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in summary.items():
        if value is None or key == "traceback":
            continue
        if key == "status":
            shown = Text(str(value), style=STATUS_STYLES.get(RunStatus(value), ""))
        elif isinstance(value, dict | list):
            shown = text(abbreviate(value, 400))
        else:
            shown = text(value)
        grid.add_row(key.replace("_", " "), shown)
    traceback = summary.get("traceback")
    return Group(grid, text(traceback, style="dim")) if traceback else grid


def summarize(events: list[Event], status: RunStatus) -> dict[str, Any]:
    """The facts ``wfrun show`` reports about a run, as JSON-ready values."""
    started = events[0]
    assert isinstance(started, WorkflowStarted)
    last = events[-1]
    ended = last.ts if status.ended else None
    activities = [e for e in events if isinstance(e, ActivityScheduled)]
    attempts = [e for e in events if isinstance(e, ActivityStarted)]
    summary: dict[str, Any] = {
        "run_id": started.run_id,
        "workflow": started.workflow,
        "target": started.target,
        "status": status,
        "started": started.ts,
        "ended": ended,
        "duration": duration_text((parse_ts(ended) - parse_ts(started.ts)).total_seconds())
        if ended
        else None,
        "events": len(events),
        "activities": len(activities),
        "attempts": len(attempts),
        "resumes": sum(isinstance(e, RunResumed) for e in events),
        "input": plain(started.input),
        "result": plain(last.result) if isinstance(last, WorkflowCompleted) else None,
        "error": Failure.from_record(last.error).describe()
        if isinstance(last, WorkflowFailed)
        else f"TimeoutError: past its execution_timeout of {last.timeout:g}s"
        if isinstance(last, WorkflowTimedOut)
        else f"CancelledError: {last.reason or 'cancelled'}"
        if isinstance(last, WorkflowCanceled)
        else None,
        "traceback": last.error.get("traceback") if isinstance(last, WorkflowFailed) else None,
    }
    # The last block (on Temporal, the retried workflow task's events may follow it).
    block = (
        next((e for e in reversed(events) if isinstance(e, RunBlocked)), None)
        if status is RunStatus.BLOCKED
        else None
    )
    if block is not None:
        blocked = Failure.from_record(block.error)
        summary["error"] = blocked.describe()
        summary["traceback"] = blocked.traceback
    if isinstance(last, RunWaiting) and status is RunStatus.WAITING:
        summary["waiting"] = last.reason
        summary["due"] = last.until
    # The runs this one is linked to, both ways.
    summary["parent"] = started.parent
    summary["continues"] = started.continued_from
    summary["continued_as"] = last.run_id if isinstance(last, WorkflowContinuedAsNew) else None
    children = [e.run_id for e in events if isinstance(e, ChildWorkflowStarted)]
    summary["children"] = children or None
    return summary
