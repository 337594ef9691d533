"""``wfrun worker TARGET...``: serve workflows and their activities to a Temporal cluster.

The worker loads every TARGET (and so decorates the activities their modules use), connects
(`wfrun.temporal.connect`: ``--temporal``, ``$WFRUN_TEMPORAL``, Temporal's own settings), says
on stderr what it serves and where, and polls until SIGINT or SIGTERM. Then it drains: it takes
no new task, lets the activities in flight finish for up to ``--drain`` seconds (the rest are
cancelled, and Temporal retries them on another worker), and exits 0: a worker asked to stop
that stopped cleanly did its job (a service manager's SIGTERM is how a deploy replaces it),
and unlike a local run nothing is left to resume here; the cluster holds every run. A second
signal while draining ends the process at once with 130.

Only this command imports ``temporalio`` (lazily), and it ends with ``os._exit``: the SDK's
runtime threads can abort the interpreter's own shutdown (sdk-python issue 300).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from ..definitions import WorkflowDefinition, decorated_activities
from ..errors import UsageError, WfrunError
from ..loader import load
from .render import inline
from .streams import user_output_to_stderr

#: Interrupted before the drain finished (the command line's code for an interruption).
INTERRUPTED = 130


def worker(
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="TARGET...",
            help="Workflows to serve: module:Workflow or path/to/file.py:Workflow; the "
            "activities their modules use are served too.",
        ),
    ],
    temporal: Annotated[
        str | None,
        typer.Option(
            "--temporal",
            metavar="HOST:PORT",
            help="The Temporal cluster (default: $WFRUN_TEMPORAL, else Temporal's own "
            "TEMPORAL_ADDRESS or config profile).",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            metavar="NS",
            help="The namespace (default: $TEMPORAL_NAMESPACE, else 'default').",
            show_default=False,
        ),
    ] = None,
    task_queue: Annotated[
        str,
        typer.Option("--task-queue", metavar="QUEUE", help="The task queue to poll."),
    ] = "wfrun",
    no_sandbox: Annotated[
        bool,
        typer.Option(
            "--no-sandbox",
            metavar="",
            help="Run workflow code outside Temporal's sandbox (for imports it refuses).",
        ),
    ] = False,
    drain: Annotated[
        float,
        typer.Option(
            "--drain",
            metavar="SECONDS",
            min=0,
            help="On SIGINT/SIGTERM, how long activities in flight may take to finish.",
        ),
    ] = 10.0,
) -> None:
    """Serve workflows and their activities to a Temporal cluster until Ctrl-C (drains)."""
    try:
        with user_output_to_stderr():  # what the modules print when imported
            definitions = [load(target) for target in targets]
        try:
            from ..temporal.connect import connect
            from ..temporal.worker import build_worker, serve_until
        except ImportError as exc:
            raise UsageError(
                f"wfrun worker needs the Temporal extra ({exc}): pip install 'wfrun[temporal]'"
            ) from None
    except WfrunError as exc:
        _stderr().print(f"[bold red]wfrun:[/] {_escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from None

    async def serve() -> None:
        client = await connect(temporal, namespace)
        built = build_worker(client, definitions, task_queue, sandbox=not no_sandbox, drain=drain)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            if stop.is_set():  # a second signal: no more waiting
                _leave(INTERRUPTED, "stopped without draining")
            stop.set()
            _stderr().print(f"wfrun: draining (up to {drain:g}s for activities in flight)")

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping)
        _announce(
            definitions,
            f"{client.service_client.config.target_host} namespace {client.namespace}",
            task_queue,
            no_sandbox,
        )
        await serve_until(built, stop)

    try:
        asyncio.run(serve())
    except WfrunError as exc:
        _leave(exc.exit_code, str(exc), error=True)
    except KeyboardInterrupt:  # before the handlers were installed
        _leave(INTERRUPTED, "interrupted")
    except Exception as exc:  # the SDK's own failure (the cluster went away, say)
        _leave(1, f"the worker stopped: {type(exc).__name__}: {exc}", error=True)
    _leave(0, "worker stopped")


def _announce(
    definitions: list[WorkflowDefinition], where: str, task_queue: str, no_sandbox: bool
) -> None:
    """One line on stderr: what this worker serves, and where."""
    names = ", ".join(d.name for d in definitions)
    activities = len(decorated_activities())  # what build_worker serves
    sandbox = " (no sandbox)" if no_sandbox else ""
    _stderr().print(
        f"wfrun: worker serving {_escape(names)} and {activities} "
        f"activit{'y' if activities == 1 else 'ies'} on task queue '{_escape(task_queue)}' at "
        f"{_escape(where)}{sandbox}; Ctrl-C stops it"
    )


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def _escape(text: str) -> str:
    """A name or message, safe inside markup (see `render.safe`)."""
    return inline(text)


def _leave(code: int, message: str, *, error: bool = False) -> NoReturn:
    """Say why, flush, and end the process now (see the module's note on ``os._exit``)."""
    prefix = "[bold red]wfrun:[/]" if error else "wfrun:"
    _stderr().print(f"{prefix} {_escape(message)}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
