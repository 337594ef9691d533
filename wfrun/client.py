"""Starting, resuming and replaying runs: what the command line and Python callers share.

``wfrun start`` and `execute_workflow` both come down to `start_run`; ``wfrun resume`` and
`resume_workflow` to `resume_run`. Each run lives in its own history file under the wfrun
home, and many runs may be in flight in one process at once.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Any

from ._version import __version__
from .clock import Clock, SystemClock
from .definition import WorkflowDefinition, require_definition
from .engine import RunEngine, RunOutcome, replay_only
from .errors import WfrunError, WorkflowFailedError, rebuild_failure
from .events import FORMAT_VERSION, Encoded, WorkflowStarted
from .history import History, Observer, RunStore, validate_run_id
from .loader import load, target_of
from .payload import check_size, default_max_payload, dumps
from .replay import Replay


def new_run_id(workflow: str, clock: Clock | None = None) -> str:
    """``user_report-20261124-101500-3f9a1c``: readable, sortable, unique."""
    moment = (clock or SystemClock()).now().astimezone(UTC)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", workflow).strip(".-")[:80] or "run"
    return f"{slug}-{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


async def start_run(
    definition: WorkflowDefinition,
    input_data: bytes,
    *,
    target: str,
    store: RunStore,
    run_id: str | None = None,
    clock: Clock | None = None,
    max_payload: int | None = None,
    observers: Iterable[Observer] = (),
) -> RunOutcome:
    """Create a run and execute it; with an existing ``run_id``, continue that run instead.

    An existing run that completed returns its recorded outcome without running anything;
    one that is incomplete is resumed; one that another process holds is `RunLockedError`.
    """
    clock = clock or SystemClock()
    limit = max_payload or default_max_payload()
    check_size(input_data, limit=limit, workflow=definition.name, side="input")
    run_id = validate_run_id(run_id) if run_id else new_run_id(definition.name, clock)
    fields = {
        "format": FORMAT_VERSION,
        "run_id": run_id,
        "workflow": definition.name,
        "target": target,
        "input": Encoded(input_data),
        "wfrun_version": __version__,
        "seed": secrets.randbits(63),
        "cwd": os.getcwd(),
        "max_payload": limit,
        "execution_timeout": (
            definition.execution_timeout.total_seconds() if definition.execution_timeout else None
        ),
    }
    try:
        writer, started = store.create(fields, clock)
    except FileExistsError:
        return await resume_run(
            run_id, store=store, clock=clock, definition=definition, observers=observers
        )
    try:
        writer.observers.extend(observers)
        for observer in writer.observers:  # they were not there when the first event was written
            observer(started)
        history = History(path=writer.path, events=[started])
        return await RunEngine(definition, history, writer, clock).run()
    finally:
        writer.close()


async def resume_run(
    run_id: str,
    *,
    store: RunStore,
    clock: Clock | None = None,
    definition: WorkflowDefinition | None = None,
    observers: Iterable[Observer] = (),
    on_history: Callable[[History], None] | None = None,
) -> RunOutcome:
    """Lock a run, replay its history against today's code and carry it on to its end.

    ``on_history`` sees the history as read under the lock, before anything runs: callers
    that want it (to show it, or to find its workflow) need not read the file again.
    """
    clock = clock or SystemClock()
    writer, history = store.open_for_append(run_id, clock)
    try:
        if on_history is not None:
            on_history(history)
        if history.terminal is not None:
            return RunOutcome.from_terminal(run_id, history.terminal)
        definition = definition or load_definition(history.started)
        writer.observers.extend(observers)
        return await RunEngine(definition, history, writer, clock).run()
    finally:
        writer.close()


def load_definition(started: WorkflowStarted) -> WorkflowDefinition:
    """The workflow a run was started with, found again from its recorded TARGET."""
    return load(started.target, cwd=started.cwd)


def replay_run(
    run_id: str, *, store: RunStore, definition: WorkflowDefinition | None = None
) -> tuple[History, Replay]:
    """Check today's code against a run's history: nothing runs, nothing is written."""
    history = store.read(run_id)
    definition = definition or load_definition(history.started)
    _, found = replay_only(definition, history)
    return history, found


# -- the Python API --------------------------------------------------------------------------


async def execute_workflow(
    workflow: type,
    params: Any = None,
    *,
    execution_id: str | None = None,
    home: str | os.PathLike[str] | None = None,
    clock: Clock | None = None,
    max_payload: int | None = None,
) -> Any:
    """Run a workflow durably, in this process, and return its result.

    The same history file, guarantees and errors as ``wfrun start``: the run can be resumed
    with ``wfrun resume`` or `resume_workflow` if this process dies. ``params`` is an instance
    of the entrypoint's input model, or a dict of its arguments by name. With an
    ``execution_id`` that already exists, the call is idempotent: a completed run returns its
    recorded result without running anything, an incomplete one is resumed.

    Example::

        report = await workflows.execute_workflow(UserReportWorkflow, {"user_id": "42"})

    Raises:
        WorkflowFailedError: the workflow failed; ``__cause__`` holds its error.
        InputError: ``params`` does not match the entrypoint's type hints (nothing ran).
    """
    definition = require_definition(workflow)
    outcome = await start_run(
        definition,
        definition.encode_input(params),
        target=target_of(workflow),
        store=RunStore(home),
        run_id=execution_id,
        clock=clock,
        max_payload=max_payload,
    )
    return result_of(definition, outcome)


async def resume_workflow(
    run_id: str, home: str | os.PathLike[str] | None = None, *, clock: Clock | None = None
) -> Any:
    """Continue an interrupted run (``wfrun resume`` from Python) and return its result."""
    loaded: list[WorkflowDefinition] = []
    outcome = await resume_run(
        run_id,
        store=RunStore(home),
        clock=clock,
        on_history=lambda history: loaded.append(load_definition(history.started)),
    )
    return result_of(loaded[0], outcome)


def result_of(definition: WorkflowDefinition, outcome: RunOutcome) -> Any:
    """The typed result of a completed run; raise for any other ending."""
    if outcome.status == "COMPLETED":
        return definition.decode_result(dumps(outcome.result))
    if outcome.status in ("FAILED", "TIMED_OUT"):
        error = outcome.error or {}
        failure = WorkflowFailedError(
            f"run {outcome.run_id} of workflow {definition.name!r} failed: "
            f"{error.get('type')}: {error.get('message')}",
            run_id=outcome.run_id,
        )
        raise failure from rebuild_failure(error)
    raise WfrunError(
        f"run {outcome.run_id} is {outcome.status}: {outcome.reason}; resume it later with "
        f"`wfrun resume {outcome.run_id}`"
    )
