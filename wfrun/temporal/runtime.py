"""The workflow runtime seam (`wfrun.runtime.WorkflowRuntime`) over ``temporalio.workflow``.

One `TemporalRuntime` per run, made by the dynamic workflow class (`wfrun.temporal.workflow`)
when Temporal creates the workflow: it owns the user's workflow object, runs its entrypoint
and message handlers, and turns every call user code makes (``now``, ``sleep``, activity
calls, children, inputs) into Temporal's own deterministic counterpart. Temporal records and
replays; nothing here keeps a history.

Errors keep wfrun's meaning: an `ApplicationError`, `ActivityError` or `WorkflowFailedError`
(or a type the workflow lists in ``failure_exception_types``) fails the run; any other
exception is a bug, and fails only the workflow *task*, which Temporal retries: the run stays
open until the code is fixed (the local BLOCKED). A cancellation reaches workflow code as
`asyncio.CancelledError`, as locally.
"""

from __future__ import annotations

import asyncio
import random as _random
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NoReturn

from temporalio import exceptions as temporal
from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy

from ..errors import (
    ActivityError,
    ApplicationError,
    Failure,
    InputError,
    UsageError,
    WorkflowFailedError,
    failure_type_names,
)
from ..events import is_run_id
from ..payload import (
    annotation_name,
    check_size,
    encode,
    encode_arguments,
    explain,
    loads,
    result_advice,
)
from ..runtime import WorkflowInfo, set_workflow_runtime
from .converter import payload
from .failures import activity_error, child_error
from .registry import serve_child

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..definitions import ActivityDefinition, WorkflowDefinition
    from ..policy import ActivityOptions

#: The query that lists the inputs a run waits for (`TemporalRuntime.query`).
PENDING_INPUTS: Final = "__wfrun_pending_inputs"
#: Temporal reads an initial interval of zero as "the default" (1 s): the shortest it honours.
_SHORTEST = timedelta(milliseconds=1)


class TemporalRuntime:
    """One run of a wfrun workflow on Temporal: its object, its handlers, its calls."""

    def __init__(self, definition: WorkflowDefinition, *, max_payload: int) -> None:
        self.definition = definition
        self.max_payload = max_payload
        #: Inputs the workflow waits for (`wait_for_input`), by label.
        self._inputs: dict[str, type[BaseModel]] = {}
        #: Answers given by label: signals named like an input, whenever they came.
        self._answers: dict[str, bytes] = {}
        self._children = 0
        set_workflow_runtime(self)
        self._object = definition.cls()

    # -- what Temporal calls -------------------------------------------------------------------

    async def run(self, arguments: Sequence[RawValue]) -> RawValue:
        """Run the entrypoint with the run's input; its encoded result."""
        set_workflow_runtime(self)
        data = arguments[0].payload.data if arguments else b"{}"
        try:
            args, kwargs = self.definition.decode_input(data)
        except InputError as exc:  # nothing of the workflow's code ran: the run fails
            raise _ending(exc) from None
        entry = self.definition.entrypoint.__get__(self._object)
        try:
            value = await entry(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._ends_the_run(exc):
                raise _ending(exc) from None
            raise  # a bug: the workflow task fails and Temporal retries it (local: BLOCKED)
        return payload(self._encoded_result(value))

    async def signal(self, name: str, arguments: Sequence[RawValue]) -> None:
        """A signal: an answer to `wait_for_input`, or a call of a signal handler."""
        set_workflow_runtime(self)
        data = arguments[0].payload.data if arguments else b"{}"
        handler = self.definition.handlers.get(("signal", name))
        if handler is None:
            # An input's answer, whether the code waits for it yet or not (a signal can
            # arrive before the code reaches its wait_for_input).
            if name not in self._inputs:
                defined = sorted(n for kind, n in self.definition.handlers if kind == "signal")
                workflow.logger.warning(
                    "workflow %r has no signal %r (it defines %s) and waits for no input of "
                    "that label: kept, as the answer to such an input should it ask for one",
                    self.definition.name,
                    name,
                    ", ".join(repr(n) for n in defined) or "no signals",
                )
            self._answers.setdefault(name, data)
            return
        try:
            values = handler.signature.decode_input(data)
        except InputError as exc:
            # Refused here, not raised: a signal stays in the history, and an error would
            # fail every replay of it. (wfrun's client refuses such a signal before sending.)
            workflow.logger.warning("signal %r refused: %s", name, exc)
            return
        args, kwargs = handler.signature.call_arguments(values)
        method = handler.fn.__get__(self._object)
        try:
            result = method(*args, **kwargs)
            if handler.is_async:
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # As locally, a handler's failure ends the run as the entrypoint's own would.
            if self._ends_the_run(exc):
                raise _ending(exc) from None
            raise

    def query(self, name: str, arguments: Sequence[RawValue]) -> RawValue:
        """Answer a query from the workflow object's state; nothing runs.

        `PENDING_INPUTS` is wfrun's own: the inputs the run waits for, by label, each with its
        schema's JSON schema (what a client shows or asks a person for).
        """
        set_workflow_runtime(self)
        if name == PENDING_INPUTS:
            pending = {label: schema.model_json_schema() for label, schema in self._inputs.items()}
            return payload(encode(pending, subject="the pending inputs"))
        handler = self.definition.handler("query", name)
        data = arguments[0].payload.data if arguments else b"{}"
        args, kwargs = handler.signature.call_arguments(handler.signature.decode_input(data))
        value = handler.fn.__get__(self._object)(*args, **kwargs)
        return payload(encode(value, subject=f"the answer of query {name!r}"))

    def validate_update(self, name: str, arguments: Sequence[RawValue]) -> None:
        """Refuse an update the workflow does not define, or whose validator refuses it."""
        set_workflow_runtime(self)
        try:
            handler = self.definition.handler("update", name)
            data = arguments[0].payload.data if arguments else b"{}"
            args, kwargs = handler.signature.call_arguments(handler.signature.decode_input(data))
            if handler.validator is not None:
                handler.validator.__get__(self._object)(*args, **kwargs)
        except Exception as exc:
            raise _ending(exc) from None

    async def update(self, name: str, arguments: Sequence[RawValue]) -> RawValue:
        """Run an update's handler; its failure fails the update only."""
        set_workflow_runtime(self)
        handler = self.definition.handler("update", name)
        data = arguments[0].payload.data if arguments else b"{}"
        try:
            args, kwargs = handler.signature.call_arguments(handler.signature.decode_input(data))
            result = handler.fn.__get__(self._object)(*args, **kwargs)
            value = await result if handler.is_async else result
            return payload(encode(value, subject=f"the result of update {name!r}"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _ending(exc) from None

    # -- the runtime seam, for workflow code ---------------------------------------------------

    @property
    def is_replaying(self) -> bool:
        return workflow.unsafe.is_replaying()

    def now(self) -> datetime:
        return workflow.now()

    def random(self) -> _random.Random:
        return workflow.random()

    def uuid4(self) -> uuid.UUID:
        return workflow.uuid4()

    def info(self) -> WorkflowInfo:
        info = workflow.info()
        return WorkflowInfo(info.workflow_id, self.definition.name, info.start_time)

    def patched(self, patch_id: str) -> bool:
        return workflow.patched(patch_id)

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        return asyncio.sleep(max(seconds, 0.0))

    def wait_condition(
        self, predicate: Callable[[], bool], timeout: float | None
    ) -> Coroutine[Any, Any, None]:
        return _wait_condition(predicate, timeout)

    def call_activity(
        self, definition: ActivityDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        return self._call_activity(definition, args, kwargs)

    async def _call_activity(
        self, definition: ActivityDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # Checked here, before anything is scheduled, as locally: bad input fails the call.
        subject = f"activity {definition.name!r}"
        arguments = definition.signature.bind(args, kwargs)
        data = encode_arguments(arguments, subject=subject)
        limit = definition.options.max_payload or self.max_payload
        check_size(data, limit=limit, activity=definition.name, side="input")
        definition.signature.decode_input(data)
        options = definition.options
        try:
            result = await workflow.execute_activity(
                definition.name,
                payload(data),
                result_type=RawValue,
                start_to_close_timeout=options.start_to_close_timeout,
                schedule_to_close_timeout=options.schedule_to_close_timeout,
                heartbeat_timeout=options.heartbeat_timeout,
                retry_policy=retry_policy(options),
            )
        except temporal.ActivityError as exc:
            if isinstance(exc.cause, temporal.CancelledError):
                raise asyncio.CancelledError(exc.cause.message) from None  # as locally
            error = activity_error(exc, definition)
            raise error from error.__cause__
        return definition.signature.decode_result(result.payload.data)

    def execute_child(
        self, definition: WorkflowDefinition, params: Any, execution_id: str | None
    ) -> Coroutine[Any, Any, Any]:
        return self._execute_child(definition, params, execution_id)

    async def _execute_child(
        self, definition: WorkflowDefinition, params: Any, execution_id: str | None
    ) -> Any:
        data = definition.encode_input(params)
        check_size(data, limit=self.max_payload, workflow=definition.name, side="input")
        self._children += 1
        info = workflow.info()
        # Derived from this run's id: unique, stable on replay, and readable as kin.
        child_id = execution_id or f"{info.workflow_id[:100]}-child-{self._children}"
        if not is_run_id(child_id):
            raise InputError(f"execution_id {child_id!r} is no valid run id")
        serve_child(info.task_queue, definition, self.max_payload)
        try:
            result = await workflow.execute_child_workflow(
                definition.name,
                payload(data),
                id=child_id,
                task_queue=info.task_queue,
                result_type=RawValue,
                execution_timeout=definition.execution_timeout,
            )
        except temporal.ChildWorkflowError as exc:
            if isinstance(exc.cause, temporal.CancelledError):
                raise asyncio.CancelledError(exc.cause.message) from None
            failed = child_error(exc, definition.name)
            raise failed from failed.__cause__
        return definition.decode_result(result.payload.data)

    def continue_as_new(self, params: Any) -> NoReturn:
        data = self.definition.encode_input(params)
        check_size(data, limit=self.max_payload, workflow=self.definition.name, side="input")
        workflow.continue_as_new(payload(data))

    def should_continue_as_new(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

    def wait_for_input(
        self, schema: type[BaseModel], label: str, timeout: float | None
    ) -> Coroutine[Any, Any, Any]:
        if label in self._inputs:
            raise UsageError(
                f"the workflow already waits for an input labelled {label!r}: give each "
                "wait_for_input its own label"
            )
        return self._wait_for_input(schema, label, timeout)

    async def _wait_for_input(
        self, schema: type[BaseModel], label: str, seconds: float | None
    ) -> Any:
        self._inputs[label] = schema
        try:
            await _wait_condition(lambda: label in self._answers, seconds)
        finally:
            del self._inputs[label]
        data = self._answers.pop(label)
        try:
            return schema.model_validate(loads(data))
        except ValueError as exc:
            raise InputError(f"input {label!r}: {exc}") from None

    @property
    def pending_inputs(self) -> dict[str, type[BaseModel]]:
        """Every input the workflow waits for now, by label."""
        return dict(self._inputs)

    # -- internals -----------------------------------------------------------------------------

    def _ends_the_run(self, exc: BaseException) -> bool:
        if isinstance(exc, ApplicationError | ActivityError | WorkflowFailedError):
            return True
        listed = self.definition.failure_exception_types
        return any(name in listed for name in failure_type_names(exc))

    def _encoded_result(self, value: Any) -> bytes:
        """The result as locally: JSON, under the payload limit, of the annotated type; else
        the run is stuck on a bug (the task fails), as a local run BLOCKS."""
        name = self.definition.name
        data = encode(value, subject=f"the result of workflow {name!r}")
        check_size(data, limit=self.max_payload, workflow=name, side="output")
        try:
            self.definition.decode_result(data)
        except Exception as error:
            annotation = self.definition.signature.result_annotation
            raise TypeError(
                f"the result of workflow {name!r} does not match its return annotation "
                f"{annotation_name(annotation)}: {explain(error)}; "
                f"{result_advice(annotation, value)}"
            ) from None
        return data


def retry_policy(options: ActivityOptions) -> RetryPolicy:
    """An activity's retry policy in Temporal's terms (attempts 0: no limit, as both say)."""
    policy = options.retry_policy
    initial = max(policy.initial_interval, _SHORTEST)
    return RetryPolicy(
        initial_interval=initial,
        backoff_coefficient=policy.backoff_coefficient,
        # Temporal refuses a maximum below the initial interval; wfrun caps at it.
        maximum_interval=max(policy.maximum_interval, initial),
        maximum_attempts=policy.maximum_attempts,
        non_retryable_error_types=list(policy.non_retryable_error_types),
    )


async def _wait_condition(predicate: Callable[[], bool], seconds: float | None) -> None:
    try:
        await workflow.wait_condition(predicate, timeout=seconds)
    except TimeoutError:
        raise TimeoutError(f"condition not met within {seconds:g}s") from None


def _ending(exc: BaseException) -> temporal.ApplicationError:
    """The Temporal error that fails a run (or an update) with ``exc``'s type and message."""
    failure = Failure.of(exc)
    detail: dict[str, Any] = {}
    if failure.traceback:
        detail["traceback"] = failure.traceback
    if failure.payload is not None:
        detail["payload"] = failure.payload
    return temporal.ApplicationError(failure.message, detail, type=failure.type, non_retryable=True)
