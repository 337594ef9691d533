"""The layout holds: modules import each other along the data flow only, never in a circle.

Read from the source (every import statement, at any depth, except those under
``if TYPE_CHECKING:``), so that a lazy import hidden in a function counts too.
"""

from __future__ import annotations

import ast
import graphlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import wfrun
from wfrun import errors

from conftest import cli, wf

PACKAGE = Path(wfrun.__file__).parent
#: The public API and the backend-neutral values it is built on.
NEUTRAL = {
    "wfrun.activity",
    "wfrun.concurrency",
    "wfrun.concurrency_types",
    "wfrun.workflow",
    "wfrun.definitions",
    "wfrun.runtime",
    "wfrun.errors",
    "wfrun.payload",
    "wfrun.policy",
    "wfrun.events",
    "wfrun.runs",
    "wfrun.settings",
    "wfrun.clock",
    "wfrun.loader",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The wfrun modules ``name`` imports at run time."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for guard in ast.walk(tree)
        if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test)
        for child in guard.body
        for node in ast.walk(child)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in MODULES and c != name}
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def test_no_module_imports_itself_back_through_others() -> None:
    # The package roots wire their children: leave out the edges into them, or every module
    # importing `wfrun.local.x` would "import" `wfrun/__init__.py` and close a trivial circle.
    graph = {name: deps - {"wfrun", "wfrun.local", "wfrun.cli"} for name, deps in GRAPH.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


def test_the_public_api_depends_on_no_backend_and_no_command_line() -> None:
    for name in NEUTRAL:
        leaks = {dep for dep in GRAPH[name] if dep.startswith(("wfrun.local", "wfrun.cli"))}
        assert not leaks, f"{name} imports {leaks}"
        assert "wfrun.backend" not in GRAPH[name], name


def test_nothing_below_the_command_line_imports_it() -> None:
    for name, deps in GRAPH.items():
        if not name.startswith("wfrun.cli") and name != "wfrun.__main__":
            assert not {d for d in deps if d.startswith("wfrun.cli")}, name


def test_importing_wfrun_loads_no_engine_store_or_history_reader() -> None:
    # Defining workflows and calling activities directly needs none of them; they are most of
    # the import time, and load with the backend when a run is first started or read.
    probe = (
        "import sys, wfrun; print(sorted(m for m in sys.modules if m.startswith('wfrun.local.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    for heavy in ("engine", "store", "history", "backend", "replay"):
        assert f"'wfrun.local.{heavy}'" not in loaded


def loaded_by_wfrun_list(module: str) -> bool:
    """Whether ``wfrun list``, run in a fresh interpreter, imports ``module``."""
    probe = (
        "import sys, wfrun; from typer.testing import CliRunner; from wfrun.cli import app; "
        f"CliRunner().invoke(app, ['list']); print({module!r} in sys.modules)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return {"True": True, "False": False}[loaded.strip()]


def test_a_local_command_never_loads_temporalio(home: Path) -> None:
    # temporalio is an optional dependency, and heavy: only --temporal commands load it.
    assert not loaded_by_wfrun_list("temporalio")


def test_reading_commands_never_load_the_engine(home: Path) -> None:
    # list, history and show read files: the engine (instance, attempts, guard) is start-up
    # time they would pay for nothing.
    assert not loaded_by_wfrun_list("wfrun.local.engine")


def test_importing_wfrun_or_its_command_line_never_imports_temporalio() -> None:
    # The Temporal extra is optional and heavy: only `wfrun worker` and `--temporal` load it.
    probe = "import sys, wfrun, wfrun.cli; print('temporalio' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "False"


def test_only_the_temporal_package_imports_temporalio() -> None:
    for name, path in MODULES.items():
        if name.startswith("wfrun.temporal"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] == "temporalio"], name


def test_the_command_line_knows_only_the_backend_seam() -> None:
    for name, deps in GRAPH.items():
        if name.startswith("wfrun.cli"):
            assert not {d for d in deps if d.startswith("wfrun.local")}, name


def test_the_local_backend_never_reaches_back_up() -> None:
    upper = ("wfrun.backend", "wfrun.execute", "wfrun.testing", "wfrun.cli")
    for name, deps in GRAPH.items():
        if name.startswith("wfrun.local"):
            assert not {d for d in deps if d.startswith(upper)}, name


# -- errors cross process boundaries -----------------------------------------------------------


EXAMPLES: list[errors.WfrunError] = [
    errors.UsageError("bad usage"),
    errors.DefinitionError("bad definition"),
    errors.TargetError("bad target"),
    errors.InputError("bad input"),
    errors.InvalidRunIdError("bad id"),
    errors.EncodingError("cannot encode"),
    errors.PayloadTooLargeError(
        "too large", activity="fetch", side="output", size=3, limit=2, workflow=None
    ),
    errors.ApplicationError("boom", {"detail": 1}, type="ValueError", non_retryable=True),
    errors.WorkflowError("stop"),
    errors.ActivityError(
        "failed", activity="fetch", activity_id=2, attempts=3, retry_state="NON_RETRYABLE_FAILURE"
    ),
    errors.WorkflowFailedError("run failed", run_id="r1"),
    errors.NonDeterminismError("differs", run_id="r1", event_id=4, recorded="a", requested="b"),
    errors.NotAwaitedError("not awaited", activity="fetch", where="app.py:12"),
    errors.RunNotFoundError("no run"),
    errors.RunLockedError("locked"),
    errors.HistoryCorruptError("damaged", path="/tmp/r1.jsonl", line=3),
    errors.HistoryIOError("disk full", path="/tmp/r1.jsonl"),
]


def test_every_error_class_has_an_example_here() -> None:
    classes = {
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.WfrunError)
    }
    assert {type(e) for e in EXAMPLES} | {errors.WfrunError, errors.PayloadError} == classes


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_message_and_attributes(error: errors.WfrunError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


# -- environment variables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WFRUN_ACTIVITY_THREADS", "many"),
        ("WFRUN_ACTIVITY_THREADS", "0"),
        ("WFRUN_BLOCKING_THRESHOLD", "soon"),
        ("WFRUN_BLOCKING_THRESHOLD", "-1"),
        ("WFRUN_MAX_PAYLOAD", "huge"),
    ],
)
def test_a_bad_environment_variable_is_a_usage_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, home: Path, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = cli("start", f"{wf('steps')}:StepsWorkflow", "--arg", "count=1")
    assert result.exit_code == 2
    assert f"${variable} is {value!r}" in result.stderr
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())
