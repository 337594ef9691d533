"""The ``wfrun`` command line: parse, call a backend, render, map errors to exit codes.

Commands know only the backend seam (`wfrun.backend`): no store, no engine. What they print
is drawn by `wfrun.cli.render`.

Exit codes (the same for start, resume and ``resume --all``):

    0   completed; the result is on stdout          4   no such run
    1   failed, cancelled or timed out              5   the run is locked by another process
    2   bad usage or bad input: nothing was run     6   the history file is damaged
    3   non-determinism: code and history disagree  74  the history cannot be read or written
    75  waiting: resume it later                    130 interrupted: ``wfrun resume`` continues it

The commands that only show something (history, list, show, query) exit 0, quietly, when the
reader closes the pipe early (``| head``), and 74, saying why, when their output cannot be
written (``> /dev/full``): see `until_the_reader_leaves`.
"""

# No `from __future__ import annotations` here: typer reads every command's annotations each
# time the command line is built (once per process, once per CliRunner call), and string
# annotations cost it a compile and an eval per parameter, most of building it.
import asyncio
import contextlib
import errno
import functools
import logging
import os
import select
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import orjson
import typer
from rich.console import Console, RenderableType
from rich.live import Live

from .._version import __version__
from ..backend import Backend, open_backend
from ..errors import Failure, InputError, PayloadError, UsageError, WfrunError
from ..events import TERMINAL, format_ts, serialize
from ..loader import canonical_target, load
from ..runs import (
    EventStream,
    RunHistory,
    RunOutcome,
    RunStatus,
    SignalSent,
    new_run_id,
    runs_to_resume,
)
from ..settings import max_payload as default_max_payload
from ..settings import parse_size
from .batch import default_parallel, resume_each
from .help import OVERVIEW, Command, Group, epilog
from .prompt import TerminalForm
from .render import (
    HISTORY_HEADER,
    NARROW,
    RUNS_HEADER,
    STATUS_STYLES,
    AlignedRows,
    HistoryRows,
    RunView,
    history_header,
    inline,
    plain_row,
    run_summary,
    runs_plain,
    runs_rows,
    safe_json,
    summarize,
    text,
)
from .streams import user_output_to_stderr
from .worker import worker as worker_command

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES: Final = {
    RunStatus.COMPLETED: 0,
    RunStatus.FAILED: 1,
    RunStatus.TIMED_OUT: 1,
    RunStatus.CANCELED: 1,
    RunStatus.CONTINUED_AS_NEW: 0,  # only when read alone: start and resume follow the chain
    RunStatus.BLOCKED: 3,
    RunStatus.WAITING: 75,
}
INTERRUPTED: Final = 130
#: Output that could not be written (a reading command's ``> /dev/full``): an I/O error.
EXIT_IO: Final = 74
#: For ``resume --all``: the most serious code among the runs wins.
SEVERITY: Final = (130, 74, 6, 3, 5, 4, 2, 1, 75, 0)
STATUSES: Final = tuple(RunStatus)

app = typer.Typer(
    name="wfrun",
    help="Durable async Python workflows on one machine: a JSONL history per run, no server.",
    epilog=epilog("start"),
    invoke_without_command=True,
    cls=Group,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"wfrun {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            callback=_print_version,
            is_eager=True,
            help="Print wfrun's version and exit.",
        ),
    ] = False,
) -> None:
    """Durable async Python workflows on one machine, with no server."""
    if ctx.invoked_subcommand is None:  # `wfrun` alone: what it is and where to start, exit 0
        typer.echo(OVERVIEW, nl=False)


HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="DIR",
        envvar="WFRUN_HOME",
        help="Where runs live (default: ./.wfrun).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON instead of text.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", metavar="", help="Print only the result.")
]
MaxWaitOption = Annotated[
    float,
    typer.Option(
        "--max-wait",
        metavar="SECONDS",
        min=0,
        help="Wait in this process for timers due within this long; a longer wait, or one only "
        "a message can end, stops the run WAITING (exit 75) for a later resume.",
    ),
]
NoResumeOption = Annotated[
    bool,
    typer.Option(
        "--no-resume",
        metavar="",
        help="Only store the message: the next resume (or resume --all) takes it.",
    ),
]
PayloadArgument = Annotated[
    str | None,
    typer.Argument(metavar="JSON|@FILE", help="The handler's arguments by name."),
]
TemporalOption = Annotated[
    str | None,
    typer.Option(
        "--temporal",
        metavar="HOST:PORT",
        envvar="WFRUN_TEMPORAL",
        help="Use the Temporal cluster there instead of the home (pip install 'wfrun[temporal]'; "
        "TLS and API key from Temporal's TEMPORAL_* settings).",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        metavar="NS",
        help="With --temporal: the namespace (default: $TEMPORAL_NAMESPACE, else default).",
        show_default=False,
    ),
]
TaskQueueOption = Annotated[
    str | None,
    typer.Option(
        "--task-queue",
        metavar="QUEUE",
        help="With --temporal: the task queue `wfrun worker` serves (default: wfrun).",
        show_default=False,
    ),
]
CodeOption = Annotated[
    str | None,
    typer.Option(
        "--target",
        metavar="TARGET",
        help="With --temporal: the workflow's code (module:Class or file.py:Class), to check "
        "the message against before it is sent. Nothing named by the cluster is imported.",
        show_default=False,
    ),
]
#: How long a command waits in-process for the next timer before the run stops WAITING.
DEFAULT_MAX_WAIT: Final = 60.0


class _Stdout(Console):
    def on_broken_pipe(self) -> None:
        # rich's own choice is exit 1; `until_the_reader_leaves` decides instead.
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def _stdout() -> Console:
    # A pipe or a file has no width: rich would assume 80 columns and squeeze the tables.
    width = None if sys.stdout.isatty() else 200
    return _Stdout(highlight=False, emoji=False, width=width)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Turn wfrun's errors into a message on stderr and their documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WfrunError as exc:
            _stderr().print(f"[bold red]wfrun:[/] {_escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def until_the_reader_leaves(fn: F) -> F:
    """For a command that only shows something: a reader that closes the pipe before the end
    (``wfrun history RUN | head``) has had what it wanted. The command stops there, quietly
    (nothing on stderr) and exits 0, so that ``set -o pipefail`` sees no failure; a command
    that runs or changes a run is not one of these (its exit code tells what became of it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            if not _reader_gone():  # a pipe of the user's code (a query handler's), say
                raise
            _discard_stdout()
            raise typer.Exit(0) from None
        except OSError as exc:
            # Not a reader gone: the output could not be written (``> /dev/full``, a full or
            # failing disk). The store turns its own files' errors into `HistoryIOError`s.
            what = f"use {exc.filename}" if exc.filename else "write the output"
            _stderr().print(f"[bold red]wfrun:[/] cannot {_escape(what)}: {exc.strerror or exc}")
            _discard_stdout()
            raise typer.Exit(EXIT_IO) from None

    return wrapper  # type: ignore[return-value]


def _discard_stdout() -> None:
    """What stdout still buffers goes nowhere at exit, instead of failing again there."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _reader_gone() -> bool:
    """Whether stdout is a pipe or socket whose reader has closed it: not any EPIPE met on
    the way (a file or ``/dev/full`` reports nothing; a pipe without readers, an error)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a descriptor (tests' captured output)
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _open(
    home: Path | None,
    temporal: str | None = None,
    namespace: str | None = None,
    task_queue: str | None = None,
    target: str | None = None,
) -> Backend:
    """The backend a command names: the home, or the Temporal cluster of ``--temporal``."""
    if temporal is None:
        given = [
            flag
            for flag, value in (
                ("--namespace", namespace),
                ("--task-queue", task_queue),
                ("--target", target),
            )
            if value is not None
        ]
        if given:
            raise UsageError(f"{given[0]} goes with --temporal HOST:PORT (or $WFRUN_TEMPORAL)")
        return open_backend(home)
    code = None
    if target is not None:
        with user_output_to_stderr():  # what the module prints when imported
            code = load(target)
    return open_backend(
        home, temporal=temporal, namespace=namespace, task_queue=task_queue, code=code
    )


def _warn(message: str) -> None:
    _stderr().print(f"[yellow]wfrun:[/] {_escape(message)}")


def _escape(text: str) -> str:
    """A user's or a history's text, safe to put inside markup: see `render.safe`."""
    return inline(text)


# -- start and resume ------------------------------------------------------------------------


@app.command(name="start", cls=Command, epilog=epilog("start"))
@handle_errors
def start(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="module:Workflow or path/to/file.py:Workflow (class or defined name).",
        ),
    ],
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            "-a",
            metavar="NAME=VALUE",
            help="An entrypoint argument; VALUE is JSON if it parses, else a string.",
        ),
    ] = None,
    input_: Annotated[
        str | None,
        typer.Option("--input", metavar="JSON|@FILE", help="All arguments as one JSON object."),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            metavar="ID",
            help="Make start idempotent: a completed run prints its result, an unfinished "
            "one is resumed.",
        ),
    ] = None,
    max_payload: Annotated[
        str | None,
        typer.Option(
            "--max-payload",
            metavar="SIZE",
            help="Limit on each encoded input and output (default 2MiB, or $WFRUN_MAX_PAYLOAD).",
        ),
    ] = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    max_wait: MaxWaitOption = DEFAULT_MAX_WAIT,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
    task_queue: TaskQueueOption = None,
) -> None:
    """Start a run of a workflow and follow it to its end."""
    backend = _open(home, temporal, namespace, task_queue)
    if temporal is not None and _given(ctx, "max_wait"):
        _warn("--max-wait has no meaning on Temporal: workers carry the run on, this waits")
    if run_id is not None:  # "" too: an id given is never replaced by a generated one
        backend.validate_run_id(run_id)
    with user_output_to_stderr():  # what the module prints when imported
        definition = load(target)
    arguments = definition.arguments_from_cli(arg or [], _read_input(input_))
    data = definition.encode_input(arguments)
    limit = parse_size(max_payload) if max_payload else default_max_payload()
    run_id = run_id if run_id is not None else new_run_id(definition.name)
    view = _live_view(json_output, quiet)
    if not sys.stdout.isatty() or (view is None and not (quiet or json_output)):
        _stderr().print(f"wfrun: run {_escape(run_id)}")  # for a cron log: which run this is
    form = _terminal_form()
    try:
        outcome = _run(
            backend.start(
                definition,
                data,
                target=canonical_target(target),
                run_id=run_id,
                max_payload=limit,
                observers=[view.apply] if view else [],
                max_wait=max_wait,
                ask=form,
            ),
            run_id,
            view,
            form,
            on_cluster=temporal is not None,
        )
    except PayloadError as exc:  # the workflow's own input: bad input, nothing ran
        raise InputError(str(exc)) from None
    _report(outcome, json_output=json_output, quiet=quiet)


@app.command(name="resume", cls=Command, epilog=epilog("resume"))
@handle_errors
def resume(
    run_id: Annotated[
        str | None, typer.Argument(metavar="RUN_ID", help="The run to continue.")
    ] = None,
    all_runs: Annotated[
        bool,
        typer.Option(
            "--all",
            metavar="",
            help="Continue every INTERRUPTED run under the home, each in its own process.",
        ),
    ] = False,
    time_limit: Annotated[
        float,
        typer.Option(
            "--time-limit",
            metavar="SECONDS",
            min=0.001,
            help="With --all: stop a run that is still going after this long (it stays resumable).",
        ),
    ] = 600.0,
    home: HomeOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    max_wait: MaxWaitOption = DEFAULT_MAX_WAIT,
) -> None:
    """Replay a run's history against today's code and carry it on to its end."""
    backend = open_backend(home)
    if all_runs == bool(run_id):
        raise UsageError("give either a RUN_ID or --all")
    if all_runs:
        code = _resume_all(
            backend, home=home, time_limit=time_limit, max_wait=max_wait, json_output=json_output
        )
        raise typer.Exit(code)
    assert run_id is not None
    view = _live_view(json_output, quiet)

    def opened(history: RunHistory) -> None:
        if history.note:
            _stderr().print(f"[yellow]wfrun:[/] {_escape(history.note)}")
        if history.terminal is None and not quiet:
            _say_what_is_imported(history)
        if view is not None:
            for event in history.events:
                view.apply(event)

    form = _terminal_form()
    work = backend.resume(
        run_id,
        observers=[view.apply] if view else [],
        on_history=opened,
        max_wait=max_wait,
        ask=form,
    )
    outcome = _run(work, run_id, view, form)
    _report(outcome, json_output=json_output, quiet=quiet)


def _resume_all(
    backend: Backend, *, home: Path | None, time_limit: float, max_wait: float, json_output: bool
) -> int:
    # First what processes killed midway left behind: cron runs this after crashes.
    removed = backend.remove_leftovers(warn=_warn)
    if removed:
        _stderr().print(
            f"wfrun: removed {len(removed)} temporary file(s) of runs whose creation was cut "
            f"short (their process is gone): {_escape(', '.join(removed))}"
        )
    now = format_ts(datetime.now(UTC))
    run_ids = runs_to_resume(backend.list_runs(warn=_warn), now)
    if not run_ids:
        _stderr().print(f"wfrun: no run to go on with under {_escape(backend.location)}")
        if json_output:
            _write_json([])
        return 0
    _configure_logging()
    results = resume_each(
        run_ids, home=home, time_limit=time_limit, max_wait=max_wait, parallel=default_parallel()
    )
    if json_output:
        _write_json([{**result.report, "exit_code": result.exit_code} for result in results])
    else:
        out = _stdout()
        for result in results:
            report = result.report
            detail = report.get("error") or report.get("reason") or ""
            if isinstance(detail, dict):
                detail = Failure.from_record(detail).describe()
            status = _escape(str(report.get("status", "ERROR")))
            out.print(f"{result.run_id} {status} {_escape(str(detail))}".rstrip())
    return min((result.exit_code for result in results), key=_severity)


def _severity(code: int) -> int:
    return SEVERITY.index(code) if code in SEVERITY else 0  # an unknown code: most serious


def _say_what_is_imported(history: RunHistory) -> None:
    """A history names the code to run: say which, and from where, before importing it."""
    started = history.started
    _stderr().print(
        f"wfrun: run {_escape(started.run_id)} runs {_escape(started.target)} "
        f"(imported from {_escape(started.cwd)})"
    )


def _read_input(value: str | None, what: str = "--input") -> Any:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError(f"{what} {value}: cannot read {path}: {exc.strerror}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None


def _live_view(json_output: bool, quiet: bool) -> RunView | None:
    if json_output or quiet or not sys.stderr.isatty():
        return None
    return RunView()


T = TypeVar("T")


def _terminal_form() -> TerminalForm | None:
    """What asks a person for a workflow's input: only when one is at a terminal."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    return TerminalForm(_stderr())


def _run(
    work: Coroutine[Any, Any, T],
    run_id: str,
    view: RunView | None,
    form: TerminalForm | None = None,
    on_cluster: bool = False,
) -> T:
    """Run ``work``; SIGINT and SIGTERM cancel it cleanly and exit 130.

    ``on_cluster``: the run is carried out elsewhere (Temporal), and only waited for here."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        if _interrupted_before():
            work.close()
            raise asyncio.CancelledError
        try:
            return await work
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    _configure_logging()
    live: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if view is not None:
        live = Live(
            get_renderable=lambda: view.renderable(datetime.now(UTC)),
            console=_stderr(),
            refresh_per_second=8,
        )
        if form is not None:
            form.live = live
    try:
        with live, user_output_to_stderr():
            return asyncio.run(main())
    except asyncio.CancelledError:
        _leave_on_signal()
        if on_cluster:
            _stderr().print(
                f"[yellow]wfrun:[/] stopped waiting; run {_escape(run_id)} goes on on the "
                "cluster (`wfrun show RUN_ID --temporal HOST:PORT` tells how it stands)"
            )
            raise typer.Exit(INTERRUPTED) from None
        target = f"wfrun resume {run_id}" if run_id != "--all" else "wfrun resume --all"
        _stderr().print(
            f"[yellow]wfrun:[/] interrupted; the history is consistent: `{target}` continues"
        )
        raise typer.Exit(INTERRUPTED) from None


def _interrupted_before() -> bool:
    """Whether Ctrl-C or SIGTERM came before this run's own handlers, and Python ignored the
    KeyboardInterrupt it raised (in a callback during an import): the console script's first
    code (`_wfrun_launcher`) remembers it."""
    launcher = sys.modules.get("_wfrun_launcher")
    return bool(getattr(launcher, "pending", False))


def _leave_on_signal() -> None:
    """After an interrupted run only its report is left (and threads an activity left running,
    which Python waits for): one more Ctrl-C or SIGTERM ends the process at once. The run's
    lock goes with it, and so do those threads: nothing can run twice."""

    def leave(signum: int, frame: Any) -> None:
        os._exit(INTERRUPTED)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, leave)


def _configure_logging() -> None:
    """Show ``workflows.workflow.logger`` lines on stderr, unless the user set logging up."""
    logger = logging.getLogger("wfrun.workflow")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(levelname)s %(workflow)s %(run_id)s: %(message)s",
            defaults={"workflow": "-", "run_id": "-"},
        )
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _write_json(value: Any, option: int = 0) -> None:
    sys.stdout.buffer.write(safe_json(orjson.dumps(value, option=option)) + b"\n")
    sys.stdout.flush()


def _outcome_json(outcome: RunOutcome) -> dict[str, Any]:
    line: dict[str, Any] = {
        "run_id": outcome.run_id,
        "status": outcome.status,
        "result": outcome.result,
    }
    if outcome.error is not None:
        line["error"] = outcome.error.record(with_traceback=False)
    if outcome.reason is not None:
        line["reason"] = outcome.reason
    if outcome.until is not None:
        line["until"] = outcome.until
    if outcome.chain:
        line["chain"] = list(outcome.chain)
    return line


def _report(outcome: RunOutcome, *, json_output: bool, quiet: bool) -> None:
    code = EXIT_CODES[outcome.status]
    if json_output:
        _write_json(_outcome_json(outcome))
        raise typer.Exit(code)
    if outcome.status is RunStatus.COMPLETED:
        tty = sys.stdout.isatty()
        option = orjson.OPT_INDENT_2 if tty and not quiet else 0
        _write_json(outcome.result, option)
        if tty and not quiet:
            _stderr().print(f"[green]✓[/] run {outcome.run_id} completed")
    elif outcome.status is RunStatus.BLOCKED:
        assert outcome.error is not None
        _stderr().print(
            f"[bold red]✗[/] run {outcome.run_id} is BLOCKED: its workflow code raised "
            f"{_escape(outcome.error.describe())}\n{_escape(outcome.error.traceback or '')}"
            + (
                _escape(outcome.reason)
                if outcome.reason
                else f"Nothing recorded is lost: fix the code, then `wfrun resume {outcome.run_id}`"
            )
        )
    elif outcome.status is RunStatus.CANCELED:
        assert outcome.error is not None
        _stderr().print(f"[yellow]✗[/] run {outcome.run_id} {_escape(outcome.error.message)}")
    elif outcome.error is not None:
        _stderr().print(
            f"[bold red]✗[/] run {outcome.run_id} failed: {_escape(outcome.error.describe())}\n"
            f"  `wfrun show {outcome.run_id}` shows the traceback"
        )
    else:
        _stderr().print(
            f"[blue]…[/] run {outcome.run_id} is {outcome.status}: {_escape(outcome.reason or '')}"
            f"; `wfrun resume {outcome.run_id}` carries it on"
        )
    raise typer.Exit(code)


# -- messages --------------------------------------------------------------------------------


@app.command(name="signal", cls=Command, epilog=epilog("signal"))
@handle_errors
def send_signal(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to send the signal to.")],
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The signal, as the workflow names it.")
    ],
    payload: PayloadArgument = None,
    no_resume: NoResumeOption = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    max_wait: MaxWaitOption = DEFAULT_MAX_WAIT,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
    target: CodeOption = None,
) -> None:
    """Send a signal to a run: stored durably, then taken by the live run or resumed here."""
    arguments = _read_input(payload, "the signal's arguments")
    backend = _open(home, temporal, namespace, target=target)
    sent = _run(
        backend.signal(run_id, name, arguments, resume=not no_resume, max_wait=max_wait),
        run_id,
        None,
    )
    _after_message(sent, f"signal {name}", json_output=json_output, quiet=quiet)


def _after_message(sent: SignalSent, what: str, *, json_output: bool, quiet: bool) -> None:
    """Say what became of a message; report the run as `resume` does if it went on here."""
    if sent.outcome is not None:
        _stderr().print(f"wfrun: {_escape(what)} delivered to run {sent.run_id}")
        _report(sent.outcome, json_output=json_output, quiet=quiet)
    how = (
        "recorded by the live run" if sent.recorded else "stored; the run takes it when it goes on"
    )
    _stderr().print(f"wfrun: {_escape(what)} to run {sent.run_id} {how}")
    if json_output:
        _write_json({"run_id": sent.run_id, "message": sent.message, "recorded": sent.recorded})


@app.command(name="cancel", cls=Command, epilog=epilog("cancel"))
@handle_errors
def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to cancel.")],
    reason: Annotated[
        str | None,
        typer.Option("--reason", metavar="TEXT", help="Why: recorded in CancelRequested."),
    ] = None,
    no_resume: NoResumeOption = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    max_wait: MaxWaitOption = DEFAULT_MAX_WAIT,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Cancel a run: its workflow sees CancelledError where it waits, cleans up, ends CANCELED."""
    backend = _open(home, temporal, namespace)
    sent = _run(
        backend.cancel(run_id, reason, resume=not no_resume, max_wait=max_wait), run_id, None
    )
    _after_message(sent, "cancellation", json_output=json_output, quiet=quiet)


@app.command(name="update", cls=Command, epilog=epilog("update"))
@handle_errors
def send_update(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to update.")],
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The update, as the workflow names it.")
    ],
    payload: PayloadArgument = None,
    home: HomeOption = None,
    max_wait: MaxWaitOption = DEFAULT_MAX_WAIT,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
    target: CodeOption = None,
) -> None:
    """Send an update to a run and print its handler's answer (exit 1 if refused or failed)."""
    arguments = _read_input(payload, "the update's arguments")
    backend = _open(home, temporal, namespace, target=target)
    answer = _run(backend.update(run_id, name, arguments, max_wait=max_wait), run_id, None)
    if answer.pending:
        _stderr().print(
            f"wfrun: update {_escape(name)} to run {run_id} is queued, not answered yet"
        )
        raise typer.Exit(75)
    if answer.error is not None:
        how = "refused" if answer.rejected else "failed"
        _stderr().print(f"wfrun: update {_escape(name)} {how}: {_escape(answer.error.describe())}")
        raise typer.Exit(1)
    _write_json(answer.result)
    if answer.outcome is not None:
        _stderr().print(f"wfrun: run {run_id} is {answer.outcome.status}")


@app.command(name="query", cls=Command, epilog=epilog("query"))
@handle_errors
@until_the_reader_leaves
def ask_query(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to ask.")],
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The query, as the workflow names it.")
    ],
    payload: PayloadArgument = None,
    home: HomeOption = None,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
    target: CodeOption = None,
) -> None:
    """Ask a run's query: its history is replayed, nothing runs, nothing is written."""
    arguments = _read_input(payload, "the query's arguments")
    backend = _open(home, temporal, namespace, target=target)
    with user_output_to_stderr():
        answer = backend.query(run_id, name, arguments)
    _write_json(answer)


# -- reading runs ----------------------------------------------------------------------------


@app.command(name="history", cls=Command, epilog=epilog("history"))
@handle_errors
@until_the_reader_leaves
def history(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run whose events to show.")],
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", metavar="", help="Print the events as JSON Lines, exactly as stored."
        ),
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", metavar="", help="Keep printing events while the run is live."
        ),
    ] = False,
    home: HomeOption = None,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Show a run's events as a table."""
    backend = _open(home, temporal, namespace)
    # Streamed, whatever the history's length: each row is printed soon after its line is
    # read, and nothing is held but a chunk. Damage deep in the file comes after the rows
    # before it; the error (file, line, exit 6) still says so. --follow goes on from there.
    tty = not json_output and sys.stdout.isatty()
    rows = HistoryRows(narrow=_stdout().width < NARROW) if tty else HistoryRows()
    table: AlignedRows | None = None
    with backend.stream_history(run_id) as stream:
        if json_output:
            _history_json(stream)
        elif tty:
            table = _history_terminal(stream, rows, more=follow)
        else:
            _history_plain(stream, rows)
        if follow:
            _follow(backend, stream, rows, table, json_output=json_output)
    if stream.note:
        _stderr().print(f"[yellow]wfrun:[/] {_escape(stream.note)}")


#: How many rows are printed at a time (one write, one flush) by the streamed commands.
CHUNK_ROWS: Final = 500


def _write_lines(lines: list[str]) -> None:
    """Plain rows on stdout, for a pipe or a file."""
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _history_json(stream: EventStream) -> None:
    """The stored lines, copied (each one was checked as it was read)."""
    out = sys.stdout.buffer
    lines: list[bytes] = []
    try:
        for line in stream.lines():
            lines.append(line)
            if len(lines) >= CHUNK_ROWS:
                out.write(safe_json(b"\n".join(lines)) + b"\n")
                out.flush()
                lines.clear()
    finally:  # also what came before damage: those lines were whole and checked
        if lines:
            out.write(safe_json(b"\n".join(lines)) + b"\n")
        out.flush()


def _history_plain(stream: EventStream, rows: HistoryRows) -> None:
    """Tab-separated rows, for a pipe or a file (SPEC section 2)."""
    lines = [plain_row(*HISTORY_HEADER)]
    try:
        for event, _ in stream:
            lines.append(rows.plain(event))
            if len(lines) >= CHUNK_ROWS:
                _write_lines(lines)
                lines.clear()
    finally:
        _write_lines(lines)


def _history_terminal(stream: EventStream, rows: HistoryRows, *, more: bool) -> AlignedRows:
    """A table that streams: the first chunk of rows fixes the columns, later ones follow.

    ``more``: rows may come after the stream's (``--follow``): the columns keep room for them.
    """
    out = _stdout()
    narrow = out.width < NARROW
    started = stream.started
    out.print(text(f"{started.workflow} · run {started.run_id} · {started.ts[:10]}"))
    chunk: list[list[RenderableType]] = []
    table: AlignedRows | None = None
    try:
        for event, _ in stream:
            chunk.append(rows.row(event))
            if len(chunk) < CHUNK_ROWS:
                continue
            if table is None:
                table = AlignedRows(history_header(narrow=narrow), chunk, out.width, more=True)
                out.print(table.header(), crop=True)
                out.print(table.draw(), crop=True)
            else:
                out.print(table.draw(chunk), crop=True)
            chunk = []
    finally:
        if table is None:
            table = AlignedRows(history_header(narrow=narrow), chunk, out.width, more=more)
            out.print(table.header(), crop=True)
            if chunk:
                out.print(table.draw(), crop=True)
        elif chunk:
            out.print(table.draw(chunk), crop=True)
    return table


def _follow(
    backend: Backend,
    stream: EventStream,
    rows: HistoryRows,
    table: AlignedRows | None,
    *,
    json_output: bool,
) -> None:
    """Print the events the live process appends after those ``stream`` printed (on a
    terminal into ``table``), until the run ends or no process carries it on."""
    out = _stdout()
    last = stream.last
    for last, line in backend.follow(stream):
        if json_output:
            sys.stdout.buffer.write(safe_json(line) + b"\n")
            sys.stdout.flush()
        elif table is None:
            _write_lines([rows.plain(last)])
        else:
            out.print(table.draw([rows.row(last)]), crop=True)
    if last.role != TERMINAL:
        run_id = stream.started.run_id
        _stderr().print(f"wfrun: run {run_id} has no live process; stopped following")


@app.command(name="list", cls=Command, epilog=epilog("list"))
@handle_errors
@until_the_reader_leaves
def list_runs(
    status: Annotated[
        str | None,
        typer.Option(
            "--status", metavar="STATUS", help=f"Only runs in this status: {', '.join(STATUSES)}."
        ),
    ] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """List the runs under the home, oldest first."""
    backend = _open(home, temporal, namespace)
    wanted = status.upper() if status else None
    if wanted is not None and wanted not in STATUSES:
        raise UsageError(f"--status {status!r} is not a status; use one of {', '.join(STATUSES)}")
    runs = [run for run in backend.list_runs(_warn) if wanted is None or run.status == wanted]
    if json_output:
        rows = [
            {
                "run_id": run.run_id,
                "workflow": run.workflow,
                "status": run.status,
                "started": run.started or None,
                "ended": run.ended,
                **({"problem": run.problem} if run.problem else {}),
                **({"due": run.due} if run.due else {}),
                **({"messages": True} if run.messages else {}),
                **({"parent": run.parent} if run.parent else {}),
            }
            for run in runs
        ]
        _write_json(rows)
        return
    tty = sys.stdout.isatty()
    if not tty:  # in chunks, as they are drawn
        _write_lines([plain_row(*RUNS_HEADER)])
        for start in range(0, len(runs), CHUNK_ROWS):
            _write_lines(list(map(runs_plain, runs[start : start + CHUNK_ROWS])))
    if not runs:
        _stderr().print(
            f"wfrun: no runs{f' with status {wanted}' if wanted else ''} under "
            f"{_escape(backend.location)}"
        )
        return
    if tty:
        out = _stdout()
        table = runs_rows(runs, width=out.width)
        out.print(table.header(), crop=True)
        for start in range(0, len(runs), CHUNK_ROWS):
            chunk = table.first[start : start + CHUNK_ROWS]
            out.print(table.draw_cells(chunk), crop=True)
    for run in runs:
        if run.problem:
            _stderr().print(f"[bold red]{run.run_id}:[/] {_escape(run.problem)}")


@app.command(name="show", cls=Command, epilog=epilog("show"))
@handle_errors
@until_the_reader_leaves
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to describe.")],
    event: Annotated[
        int | None,
        typer.Option(
            "--event",
            "-e",
            metavar="N",
            help="Print event N (its id in `wfrun history`) whole, as pretty JSON.",
        ),
    ] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Describe a run: its workflow, status, timing, input and result or error."""
    recorded = _open(home, temporal, namespace).history(run_id)
    if event is not None:
        _write_json(_one_event(recorded, event), orjson.OPT_INDENT_2)
        return
    summary = summarize(recorded.events, recorded.status)
    if json_output:
        _write_json(summary)
        return
    _stdout().print(run_summary(summary))


def _one_event(recorded: RunHistory, wanted: int) -> dict[str, Any]:
    """Event ``wanted`` of a run, whole, as its history holds it (without its checksum)."""
    found = [event for event in recorded.events if event.id == wanted]
    if not found:
        last = recorded.events[-1].id
        raise UsageError(
            f"run {recorded.started.run_id} has events 1 to {last}; there is no event {wanted}"
        )
    fields: dict[str, Any] = orjson.loads(serialize(found[0]))
    fields.pop("crc", None)
    return fields


@app.command(name="replay", cls=Command, epilog=epilog("replay"))
@handle_errors
def replay(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="The run whose history to check.")
    ],
    home: HomeOption = None,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="TARGET",
            help="With --temporal (where it is required): the code to replay the history "
            "against. Nothing named by the cluster is imported.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check today's code against a run's history: runs no activity, writes nothing."""
    if temporal is not None and target is None:
        raise UsageError(
            "replay --temporal needs --target TARGET, the code to replay against: wfrun never "
            "imports a module that a cluster names"
        )
    backend = _open(home, temporal, namespace, target=target)
    with user_output_to_stderr():
        found = backend.replay(run_id, on_history=_say_what_is_imported)
    out = _stderr()
    style = STATUS_STYLES.get(RunStatus.COMPLETED)
    out.print(
        f"[{style}]✓[/] run {run_id} replays: today's code agrees with its {found.events} events"
    )
    if found.next_steps and not found.finished:
        out.print(f"  a resume would go on with {found.next_steps} new step(s)")


def _given(ctx: typer.Context, parameter: str) -> bool:
    """Whether the user gave ``parameter`` (on the command line or in its variable)."""
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


# `wfrun worker` (the Temporal backend) lives in its own module.
app.command(name="worker", cls=Command, epilog=epilog("worker"))(worker_command)


def main() -> None:
    """The console script."""
    try:
        app()
    except SystemExit as exc:
        if "temporalio" in sys.modules:
            # The Temporal SDK's runtime threads can abort the interpreter's shutdown after
            # the right output (sdk-python issue 300): flush, and leave with the code as is.
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                sys.stderr.write(exc.code + "\n")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
