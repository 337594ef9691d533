"""Mistral Workflows' own starter examples, as its documentation writes them.

Each is rewritten here from the description on docs.mistral.ai, keeping its names, options and
shape; only the imports change: ``mistralai.workflows`` becomes ``wfrun`` (the approval
example also imports ``workflow`` from it, as Mistral's page does). Where the original calls
the outside world (an HTTP API), a local stand-in takes its place, so that the test suite
needs no network. ``tests/test_compat.py`` runs each through ``wfrun start``.
"""

import asyncio
from datetime import timedelta

from pydantic import BaseModel

import wfrun as workflows  # was: import mistralai.workflows as workflows
from wfrun import workflow  # was: from mistralai.workflows import workflow

# -- Quickstart: your first workflow (src/workflows/hello.py of the scaffolded project) --------


class HelloInput(BaseModel):
    name: str = "World"


@workflows.activity()
async def greet(name: str) -> str:
    """A simple activity that returns a greeting."""
    return f"Hello, {name}! Welcome to Mistral Workflows."


@workflows.workflow.define(
    name="hello-world",
    workflow_display_name="Hello World",
    workflow_description="A minimal hello-world workflow.",
)
class HelloWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, input: HelloInput) -> str:
        return await greet(input.name)


# -- Your first workflow (my_workflow.py, as the getting-started page had it) -----------------


# Activities are async functions that can take any JSON-serializable types
@workflows.activity()
async def hello_world(name: str) -> dict:
    """Where the actual work happens; its parameters can be any JSON-serializable type."""
    return {"message": f"Hello, {name}!"}


# Workflows orchestrate activities
@workflows.workflow.define(name="simple_example_workflow")
class SimpleExampleWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, name: str) -> dict:
        """Coordinates activities; may wait for external events."""
        return await hello_world(name)


# The worker that Mistral's cluster needs; `wfrun start` needs none, and never calls this.
async def main() -> None:
    await workflows.run_worker([SimpleExampleWorkflow])  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main())


# -- Waiting for conditions: an approval flow (human in the loop) ------------------------------


@workflows.workflow.define(name="approval_workflow")
class ApprovalWorkflow:
    def __init__(self) -> None:
        self.approved = False

    @workflows.workflow.signal(name="approve", description="Approve the request")
    async def approve(self) -> None:
        self.approved = True

    @workflows.workflow.entrypoint
    async def run(self, request_id: str) -> str:
        try:
            # Wait up to 24 hours for the approval
            await workflow.wait_condition(lambda: self.approved, timeout=timedelta(hours=24))
        except TimeoutError:
            return f"Request {request_id} timed out"
        return f"Request {request_id} approved"


# -- Activities: a retry policy on a call to an external API -----------------------------------


class ApiParams(BaseModel):
    url: str
    payload: dict


class ApiResponse(BaseModel):
    status: int
    body: dict


async def post(url: str, json: dict) -> ApiResponse:
    """Stands in for ``httpx.AsyncClient().post``: the service fails the first request."""
    from flows.steps import log_attempt

    if log_attempt("external_api") == 1:
        raise ConnectionError(f"{url}: connection reset by peer")
    return ApiResponse(status=200, body={"received": json})


@workflows.activity(
    start_to_close_timeout=timedelta(minutes=5),
    retry_policy_max_attempts=3,
    retry_policy_backoff_coefficient=2.0,
)
async def call_external_api(params: ApiParams) -> ApiResponse:
    return await post(params.url, json=params.payload)


@workflows.workflow.define(name="external_api_workflow")
class ExternalApiWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, params: ApiParams) -> ApiResponse:
        return await call_external_api(params)


# -- Concurrency: small batches with asyncio.gather, large ones with the list executor --------


@workflows.activity()
async def process_item(item: str) -> dict:
    return {"item": item, "result": f"processed:{item}"}


class Input(BaseModel):
    items: list[str]


@workflows.workflow.define(name="concurrency_workflow")
class ConcurrencyWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, params: Input) -> list[dict]:
        results = await asyncio.gather(*[process_item(item) for item in params.items])
        return list(results)


@workflows.activity()
async def process_primitive_activity(name: str, count: int) -> str:
    return f"processed_{name}_{count}"


@workflows.workflow.define(name="list-executor-primitive-example")
class ListExecutorPrimitiveExample:
    """The list executor with primitive types: each item is a dict of the activity's arguments."""

    @workflows.workflow.entrypoint
    async def run(self) -> list[str]:
        return await workflows.execute_activities_in_parallel(
            activity=process_primitive_activity,
            items=[{"name": f"item_{i}", "count": i} for i in range(10)],
        )
