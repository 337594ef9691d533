"""The client side of the Temporal backend: `TemporalBackend`, what ``--temporal`` commands call.

It implements `wfrun.backend.Backend` over a Temporal client, keeping the mapping contract of
`wfrun.temporal`: a run is a workflow execution whose id is the run id, started by the
workflow's defined name with the encoded input as one payload, on the task queue that
``wfrun worker`` serves. Runs are carried out by workers, never here: ``start`` starts a run and
waits for its end, reading its history as it grows (the live view sees wfrun's events, converted
by `wfrun.temporal.history`).

A run whose workflow code raises a bug stays open on Temporal (the server retries its workflow
task, forever): ``start`` reports it BLOCKED (exit 3) as soon as its workflow task has failed
with a bug and nothing else happened since, and leaves it open; once a fixed worker runs, the
retried task succeeds and the run carries on by itself.

Nothing named by the cluster is ever imported: the code a ``replay`` or a message check runs
against comes from a TARGET the user gives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .. import settings
from .._version import __version__
from ..clock import Clock
from ..definitions import WorkflowDefinition
from ..errors import (
    Failure,
    InputError,
    InvalidRunIdError,
    NonDeterminismError,
    RunNotFoundError,
    UsageError,
)
from ..events import (
    TERMINAL,
    Event,
    ForeignEvent,
    Observer,
    RunBlocked,
    WorkflowContinuedAsNew,
    WorkflowStarted,
    is_run_id,
)
from ..payload import abbreviate, check_size, encode, loads
from ..runs import (
    EventStream,
    InputPrompt,
    ReplayResult,
    RunHistory,
    RunInfo,
    RunOutcome,
    RunStatus,
    SignalSent,
    UpdateResult,
    new_run_id,
)
from . import NAMESPACE, TASK_QUEUE, converter
from .history import TARGET_MEMO, VERSION_MEMO, Converter, event_json, is_bug, payload_value

if TYPE_CHECKING:
    # Imported where a replay needs them: a worker's machinery costs every other command
    # its import time.
    from temporalio.runtime import Runtime
    from temporalio.worker import WorkflowReplayResult

T = TypeVar("T")


#: Temporal's statuses as wfrun's (a terminated run has no counterpart: it ended without a
#: result, as a failed one did).
STATUSES: Final = {
    WorkflowExecutionStatus.RUNNING: RunStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.FAILED,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: RunStatus.CONTINUED_AS_NEW,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}

#: How long ``signal --target`` waits for a run to say which inputs it waits for.
LABEL_CHECK_TIMEOUT: Final = timedelta(seconds=5)

#: What ``start`` says of a BLOCKED run, instead of local's "then `wfrun resume`".
BLOCKED_HINT: Final = (
    "the run stays open on the cluster, nothing recorded is lost: fix the code and restart "
    "`wfrun worker`; Temporal retries the workflow task and the run carries on"
)


def _warn(message: str) -> None:
    sys.stderr.write(f"wfrun: {message}\n")
    sys.stderr.flush()


class TemporalBackend:
    """Runs on a Temporal cluster: ``address`` (``HOST:PORT``), ``namespace``, ``task_queue``.

    ``code`` is the workflow the user named with ``--target``: signals, queries and updates are
    checked against its handlers before they are sent, and ``replay`` runs it. Without it,
    messages go as they are and the worker refuses what its workflow does not define.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        namespace: str | None = None,
        task_queue: str | None = None,
        code: WorkflowDefinition | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        settings.check()
        #: Told what the user should know and that is no error (one line each).
        self.warn = warn or _warn
        self.address = address
        self.namespace = namespace
        self.task_queue = task_queue or TASK_QUEUE
        self.code = code

    @property
    def location(self) -> str:
        address = self.address or "the address Temporal's settings give"
        return f"Temporal at {address}, namespace {self.namespace or NAMESPACE}"

    def validate_run_id(self, run_id: str) -> str:
        # wfrun's own rule on both backends: an id that works here works locally, and the
        # other way round.
        if not is_run_id(run_id):
            raise InvalidRunIdError(
                f"invalid run id {run_id!r}: use 1 to 128 of A-Z a-z 0-9 . _ -, starting with a "
                "letter, a digit or '_', and without '..'"
            )
        return run_id

    async def _client(self) -> Client:
        from .connect import connect

        return await connect(self.address, self.namespace)

    def _sync(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``work`` with a client from synchronous code (in a thread, if a loop runs)."""

        async def main() -> T:
            return await work(await self._client())

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(main())
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, main()).result()

    # -- carrying runs out -------------------------------------------------------------------

    async def start(
        self,
        definition: WorkflowDefinition,
        input_data: bytes,
        *,
        target: str,
        run_id: str | None = None,
        max_payload: int | None = None,
        clock: Clock | None = None,
        observers: Iterable[Observer] = (),
        max_wait: float | None = None,
        ask: InputPrompt | None = None,
    ) -> RunOutcome:
        limit = max_payload or settings.max_payload()
        check_size(input_data, limit=limit, workflow=definition.name, side="input")
        run_id = self.validate_run_id(run_id) if run_id is not None else new_run_id(definition.name)
        client = await self._client()
        with _rpc_errors(run_id, self.location):
            try:
                await client.start_workflow(
                    definition.name,
                    converter.payload(input_data),
                    id=run_id,
                    task_queue=self.task_queue,
                    execution_timeout=definition.execution_timeout,
                    # A run id names one run for ever, as a history file does: never a second.
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    memo={TARGET_MEMO: target, VERSION_MEMO: __version__},
                )
            except WorkflowAlreadyStartedError:
                await _same_run(client, run_id, definition, input_data)
            else:
                await self._tell_if_unserved(client)
            return await self._outcome(client, run_id, observers)

    async def _tell_if_unserved(self, client: Client) -> None:
        """Say so when no worker polls the task queue: the run would wait for one, silently
        (a local run never waits for anybody)."""
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        try:
            response = await client.workflow_service.describe_task_queue(request)
        except RPCError:  # only a hint: the run is started all the same
            return
        if not response.pollers:
            self.warn(
                f"no worker has polled task queue {self.task_queue!r} on {self.location} "
                "lately: the run waits until one does (`wfrun worker TARGET --temporal "
                f"HOST:PORT --task-queue {self.task_queue}`)"
            )

    async def resume(
        self,
        run_id: str,
        *,
        definition: WorkflowDefinition | None = None,
        clock: Clock | None = None,
        observers: Iterable[Observer] = (),
        on_history: Callable[[RunHistory], None] | None = None,
        max_wait: float | None = None,
        ask: InputPrompt | None = None,
    ) -> RunOutcome:
        """Wait for a run's end: workers carry runs on, nothing is resumed from here."""
        client = await self._client()
        with _rpc_errors(run_id, self.location):
            return await self._outcome(client, run_id, observers)

    async def _outcome(
        self, client: Client, run_id: str, observers: Iterable[Observer]
    ) -> RunOutcome:
        """Follow a run's history as it grows, to its end (through continue-as-new), or until
        its workflow code is found BLOCKED."""
        observers = list(observers)
        execution: str | None = None
        while True:
            handle = client.get_workflow_handle(run_id, run_id=execution)
            execution = (await handle.describe()).run_id
            handle = client.get_workflow_handle(run_id, run_id=execution)
            converter = Converter(run_id)
            async for proto in handle.fetch_history_events(wait_new_event=True):
                event = converter.convert(proto)
                for observer in observers:
                    observer(event)
                if isinstance(event, RunBlocked) and await _still_blocked(handle, event.id):
                    error = Failure.from_record(event.error)
                    return RunOutcome(run_id, RunStatus.BLOCKED, error=error, reason=BLOCKED_HINT)
                if isinstance(event, WorkflowContinuedAsNew):
                    execution = event.run_id
                    break
                if event.role == TERMINAL:
                    return RunOutcome.from_terminal(run_id, event)
                if isinstance(event, ForeignEvent) and event.type == "WorkflowExecutionTerminated":
                    message = f"terminated on the cluster: {event.detail or 'no reason given'}"
                    return RunOutcome(
                        run_id, RunStatus.FAILED, error=Failure("Terminated", message)
                    )
            else:  # pragma: no cover - a closed run's history ends with its closing event
                raise RunNotFoundError(f"run {run_id}'s history on {self.location} ended early")

    # -- messages ----------------------------------------------------------------------------

    def _message_input(self, kind: str, name: str, payload: Mapping[str, Any] | None) -> bytes:
        """A message's arguments, checked against the handler when the code is known; else
        the JSON object as given (the worker refuses a name its workflow does not define)."""
        # A signal may also answer `wait_for_input`, whose labels only the run knows.
        if self.code is not None and (kind != "signal" or (kind, name) in self.code.handlers):
            return self.code.handler(kind, name).encode_input(payload)
        if payload is None:
            payload = {}
        if not isinstance(payload, Mapping):
            raise InputError(f"the {kind}'s arguments must be a JSON object of arguments by name")
        return encode(dict(payload), subject=f"the arguments of {kind} {name!r}")

    async def _handle(self, client: Client, run_id: str, too_late: str) -> WorkflowHandle[Any, Any]:
        """The run's handle, once it is known to be open (as local refuses a message to a run
        that has ended, naming how it ended)."""
        self.validate_run_id(run_id)
        handle = client.get_workflow_handle(run_id)
        with _rpc_errors(run_id, self.location):
            described = await handle.describe()
        status = described.status
        if status is not None and status != WorkflowExecutionStatus.RUNNING:
            raise UsageError(f"run {run_id} has ended ({STATUSES[status]}): {too_late}")
        if self.code is not None and described.workflow_type != self.code.name:
            raise UsageError(
                f"run {run_id} is a run of workflow {described.workflow_type!r}, not of "
                f"{self.code.name!r} (--target): nothing was sent"
            )
        return handle

    async def signal(
        self,
        run_id: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        resume: bool = True,
        clock: Clock | None = None,
        max_wait: float | None = None,
        observers: Iterable[Observer] = (),
    ) -> SignalSent:
        data = self._message_input("signal", name, payload)
        client = await self._client()
        handle = await self._handle(client, run_id, "no signal can reach it any more")
        if self.code is not None and ("signal", name) not in self.code.handlers:
            await self._check_input_label(handle, name)
        with _rpc_errors(run_id, self.location):
            await handle.signal(name, converter.payload(data))
        # Recorded in the run's history when the server acknowledges it: durable there.
        return SignalSent(run_id, secrets.token_hex(8), recorded=True)

    async def _check_input_label(self, handle: WorkflowHandle[Any, Any], name: str) -> None:
        """A signal that is no handler of the code given must answer an input the run waits
        for (`wait_for_input`): the run says which it waits for (a query its worker answers).
        Refused as locally when it is none of them; sent as it is when no worker answers soon
        (a signal is durable on the cluster, and waits for one)."""
        from .runtime import PENDING_INPUTS  # the worker's side: imported when needed

        assert self.code is not None
        try:
            answer = await handle.query(
                PENDING_INPUTS, result_type=RawValue, rpc_timeout=LABEL_CHECK_TIMEOUT
            )
            pending = payload_value(answer.payload)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
            return
        if not isinstance(pending, dict) or name in pending:
            return
        defined = sorted(n for kind, n in self.code.handlers if kind == "signal")
        inputs = f", and waits for input {', '.join(map(repr, pending))}" if pending else ""
        raise UsageError(
            f"workflow {self.code.name!r} has no signal {name!r}; it defines "
            f"{', '.join(map(repr, defined)) or 'no signals'}{inputs}"
        )

    async def cancel(
        self,
        run_id: str,
        reason: str | None = None,
        *,
        resume: bool = True,
        clock: Clock | None = None,
        max_wait: float | None = None,
        observers: Iterable[Observer] = (),
    ) -> SignalSent:
        client = await self._client()
        handle = await self._handle(client, run_id, "there is nothing left to cancel")
        with _rpc_errors(run_id, self.location):
            await handle.cancel(reason=reason or "")
        return SignalSent(run_id, secrets.token_hex(8), recorded=True)

    async def update(
        self,
        run_id: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        max_wait: float | None = None,
    ) -> UpdateResult:
        data = self._message_input("update", name, payload)
        client = await self._client()
        handle = await self._handle(client, run_id, "no update can reach it any more")
        update_id = secrets.token_hex(8)
        with _rpc_errors(run_id, self.location):
            try:
                answer = await handle.execute_update(
                    name, converter.payload(data), id=update_id, result_type=RawValue
                )
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                failure = Failure(
                    str(getattr(cause, "type", None) or type(cause).__name__),
                    str(getattr(cause, "message", None) or cause),
                )
                # A validator's refusal leaves no trace in the history; a handler's failure
                # follows its acceptance there.
                accepted = await _update_accepted(handle, update_id)
                return UpdateResult(run_id, error=failure, rejected=not accepted)
        return UpdateResult(run_id, result=payload_value(answer.payload))

    def query(self, run_id: str, name: str, payload: Mapping[str, Any] | None = None) -> Any:
        data = self._message_input("query", name, payload)
        self.validate_run_id(run_id)

        async def ask(client: Client) -> Any:
            handle = client.get_workflow_handle(run_id)
            with _rpc_errors(run_id, self.location):
                if self.code is not None:
                    await self._handle_of_code(handle, run_id)
                try:
                    answer = await handle.query(name, converter.payload(data), result_type=RawValue)
                except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
                    raise UsageError(f"query {name!r} of run {run_id} failed: {exc}") from None
            return payload_value(answer.payload)

        return self._sync(ask)

    async def _handle_of_code(self, handle: WorkflowHandle[Any, Any], run_id: str) -> None:
        assert self.code is not None
        described = await handle.describe()
        if described.workflow_type != self.code.name:
            raise UsageError(
                f"run {run_id} is a run of workflow {described.workflow_type!r}, not of "
                f"{self.code.name!r} (--target): nothing was asked"
            )

    # -- reading runs ------------------------------------------------------------------------

    def history(self, run_id: str) -> RunHistory:
        self.validate_run_id(run_id)

        async def read(client: Client) -> tuple[list[HistoryEvent], WorkflowExecutionStatus | None]:
            handle = client.get_workflow_handle(run_id)
            with _rpc_errors(run_id, self.location):
                described = await handle.describe()
                handle = client.get_workflow_handle(run_id, run_id=described.run_id)
                protos = [proto async for proto in handle.fetch_history_events()]
            return protos, described.status

        protos, status = self._sync(read)
        converter = Converter(run_id)
        events = [converter.convert(proto) for proto in protos]
        recorded = RunHistory(events=events, stored=b"".join(event_json(e) + b"\n" for e in events))
        if status is not None and status != WorkflowExecutionStatus.RUNNING:
            recorded.status = STATUSES[status]
        else:
            recorded.status = RunStatus.BLOCKED if _blocked_at_end(protos) else RunStatus.RUNNING
        return recorded

    def stream_history(self, run_id: str) -> FetchedStream:
        return FetchedStream(self.history(run_id))

    def follow(self, stream: EventStream) -> Iterator[tuple[Event, bytes]]:
        """Events after ``stream``'s, as the cluster records them, until the run closes."""
        assert isinstance(stream, FetchedStream)
        history = stream.history
        run_id = history.started.run_id
        seen = history.events[-1].id
        while history.events[-1].role != TERMINAL:
            time.sleep(FOLLOW_INTERVAL)
            history = self.history(run_id)
            for event in history.events:
                if event.id > seen:
                    seen = event.id
                    yield event, event_json(event)

    def list_runs(self, warn: Callable[[str], None] = lambda _: None) -> list[RunInfo]:
        async def listing(client: Client) -> list[RunInfo]:
            with _rpc_errors("", self.location):
                found = [run async for run in client.list_workflows()]
            runs = []
            for run in found:
                status = STATUSES.get(run.status, RunStatus.RUNNING) if run.status else None
                runs.append(
                    RunInfo(
                        run_id=run.id,
                        workflow=run.workflow_type,
                        status=status or RunStatus.RUNNING,
                        started=_ts(run.start_time),
                        ended=_ts(run.close_time) if run.close_time else None,
                        parent=run.parent_id,
                    )
                )
            return sorted(runs, key=lambda run: run.started)

        return self._sync(listing)

    def remove_leftovers(self, warn: Callable[[str], None] = lambda _: None) -> list[str]:
        """Nothing: the cluster keeps no files of this machine's."""
        return []

    def replay(
        self,
        run_id: str,
        definition: WorkflowDefinition | None = None,
        on_history: Callable[[RunHistory], None] | None = None,
    ) -> ReplayResult:
        """Replay the run's history on Temporal's `Replayer` against ``definition`` (or the
        ``code`` given): the user names the code, never the cluster. Nothing runs, nothing is
        written; `NonDeterminismError` where code and history disagree."""
        code = definition or self.code
        if code is None:
            raise UsageError(
                "replay --temporal needs --target TARGET, the code to replay against: wfrun "
                "never imports a module that a cluster names"
            )
        self.validate_run_id(run_id)

        async def fetch(client: Client) -> WorkflowHistory:
            handle = client.get_workflow_handle(run_id)
            with _rpc_errors(run_id, self.location):
                described = await handle.describe()
                handle = client.get_workflow_handle(run_id, run_id=described.run_id)
                return await handle.fetch_history()

        history = self._sync(fetch)
        started = history.events[0].workflow_execution_started_event_attributes
        if started.workflow_type.name != code.name:
            raise UsageError(
                f"run {run_id} is a run of workflow {started.workflow_type.name!r}, not of "
                f"{code.name!r} (--target): nothing was replayed"
            )
        found = self._sync(lambda _: _replay(history, code, started.task_queue.name))
        if found.replay_failure is not None:
            failure = found.replay_failure
            raise NonDeterminismError(
                f"run {run_id} does not replay against {code.name!r} as it is today: "
                f"{_failure_text(failure)}",
                run_id=run_id,
                event_id=None,
                recorded="the history on the cluster",
                requested="today's code",
            )
        last = history.events[-1]
        return ReplayResult(
            run_id=run_id, events=len(history.events), finished=_closes(last), next_steps=0
        )


#: How often ``history --follow --temporal`` reads the run again (seconds).
FOLLOW_INTERVAL: Final = 0.5


class FetchedStream:
    """A run's converted events as an `wfrun.runs.EventStream` (fetched whole: Temporal
    pages a history itself, and limits its length)."""

    def __init__(self, history: RunHistory) -> None:
        self.history = history
        self.started: WorkflowStarted = history.started
        self.note: str | None = None
        self.last: Event = history.events[-1]

    def __iter__(self) -> Iterator[tuple[Event, bytes]]:
        for event in self.history.events:
            yield event, event_json(event)

    def lines(self) -> Iterator[bytes]:
        for _, line in self:
            yield line

    def close(self) -> None:
        pass

    def __enter__(self) -> FetchedStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _ts(moment: Any) -> str:
    from ..events import format_ts

    return format_ts(moment)


@contextlib.contextmanager
def _rpc_errors(run_id: str, location: str) -> Iterator[None]:
    """Temporal's RPC errors as wfrun's: no such run (exit 4), a run that has ended."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and _namespace_missing(exc):
            raise UsageError(
                f"{location}: {exc.message} (create it with `temporal operator namespace "
                "create`, or give another --namespace)"
            ) from None
        if exc.status == RPCStatusCode.NOT_FOUND:
            if "already completed" in exc.message:
                raise UsageError(f"run {run_id} has ended: {exc.message}") from None
            raise RunNotFoundError(f"no run {run_id} on {location}") from None
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise UsageError(f"Temporal refused it: {exc.message}") from None
        raise


async def _update_accepted(handle: WorkflowHandle[Any, Any], update_id: str) -> bool:
    async for proto in handle.fetch_history_events():
        if proto.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = proto.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.meta.update_id == update_id:
                return True
    return False


def _namespace_missing(exc: RPCError) -> bool:
    details = exc.grpc_status.details
    return any(d.type_url.endswith(".NamespaceNotFoundFailure") for d in details)


async def _first_started(client: Client, run_id: str) -> HistoryEvent:
    """The WorkflowExecutionStarted event of the first run of ``run_id``'s chain."""
    handle = client.get_workflow_handle(run_id)
    started = await _first_event(handle)
    attributes = started.workflow_execution_started_event_attributes
    first = attributes.first_execution_run_id
    if attributes.continued_execution_run_id and first:
        started = await _first_event(client.get_workflow_handle(run_id, run_id=first))
    return started


async def _first_event(handle: WorkflowHandle[Any, Any]) -> HistoryEvent:
    async for proto in handle.fetch_history_events(page_size=1):
        return proto
    raise RunNotFoundError(f"run {handle.id} has no history")  # pragma: no cover


async def _same_run(
    client: Client, run_id: str, definition: WorkflowDefinition, input_data: bytes
) -> None:
    """An idempotent start of an existing run must ask for that very run (as locally): the
    same workflow and the same input, never answered with another run's result."""
    started = (await _first_started(client, run_id)).workflow_execution_started_event_attributes
    workflow = started.workflow_type.name
    if workflow != definition.name:
        raise InputError(
            f"run {run_id} exists for workflow {workflow!r}, not {definition.name!r}: pick "
            "another --run-id (nothing was run)"
        )
    recorded = payload_value(started.input.payloads[0]) if started.input.payloads else {}
    given = loads(input_data)
    if recorded != given:
        raise InputError(
            f"run {run_id} exists with input {abbreviate(recorded)}, not {abbreviate(given)}: "
            "pick another --run-id, or start it with the same input to get its result "
            "(nothing was run)"
        )


async def _still_blocked(handle: WorkflowHandle[Any, Any], failed_at: int) -> bool:
    """Whether nothing moved the run on since its workflow task failed at ``failed_at``: read
    again now, its history holds no later workflow task completion and no end."""
    protos = [proto async for proto in handle.fetch_history_events()]
    return _blocked_at_end([p for p in protos if p.event_id >= failed_at])


async def _replay(
    history: WorkflowHistory, code: WorkflowDefinition, task_queue: str
) -> WorkflowReplayResult:
    """Replay ``history`` with the worker's one workflow class serving ``code``."""
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

    from .converter import data_converter
    from .registry import serve
    from .workflow import WfrunWorkflow

    # The workflow class finds its code by task queue and type. A replay runs on a queue of
    # the replayer's own, "replay-<build id>" (temporalio's Replayer names it so): a build id
    # of wfrun's keeps it apart from any worker's queue in this process.
    build_id = f"wfrun-{task_queue}"
    serve(f"replay-{build_id}", [code], settings.max_payload())
    replayer = Replayer(
        workflows=[WfrunWorkflow],
        build_id=build_id,
        runtime=_quiet_runtime(),
        data_converter=data_converter,
        # wfrun's runtime seam keeps workflow code deterministic; a TARGET loaded from a file
        # cannot be imported again by the sandbox anyway.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    # What does not replay is the answer, said once by wfrun: not a warning per failed task
    # from the SDK's core and its Python logger.
    quiet = logging.getLogger("temporalio")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return await replayer.replay_workflow(history, raise_on_replay_failure=False)
    finally:
        quiet.setLevel(level)


def _quiet_runtime() -> Runtime:
    """A Temporal runtime whose core logs only errors (one per process: each has threads)."""
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    global _QUIET
    if _QUIET is None:
        _QUIET = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        )
    return _QUIET


_QUIET: Runtime | None = None


def _failure_text(failure: Exception) -> str:
    """The message inside the core's ``Failure { failure: Some(Failure { message: "..." ``."""
    found = re.search(r'message: "((?:[^"\\]|\\.)*)"', str(failure))
    return found.group(1) if found else f"{type(failure).__name__}: {failure}"


def _blocked_at_end(protos: list[HistoryEvent]) -> bool:
    """Whether the last workflow task of these events failed with a bug, and the run is open."""
    blocked = False
    for proto in protos:
        kind = proto.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            blocked = is_bug(proto.workflow_task_failed_event_attributes.cause)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            blocked = False
    return blocked and not _closes(protos[-1]) if protos else False


def _closes(proto: HistoryEvent) -> bool:
    return proto.event_type in _CLOSING


_CLOSING: Final = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }
)
