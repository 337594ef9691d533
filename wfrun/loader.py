"""From a TARGET on the command line to a workflow definition.

TARGET is ``package.module:Name`` or ``path/to/file.py:Name``, where Name is the workflow's
class name or the name given to ``@workflows.workflow.define(name=...)``. Module targets are
imported with the current directory on ``sys.path`` (as ``python -m`` would). A file inside a
package (its folder has an ``__init__.py``) is imported under its package name, with the
package's parent folder on ``sys.path``, so that its relative and package imports work; any
other file is imported from its path, with its folder on ``sys.path`` for its neighbours.

Every way a TARGET can be wrong is a `TargetError` saying which part is wrong and what there
is instead.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from .definitions import WorkflowDefinition, activity_definition_of, workflow_definition_of
from .errors import TargetError
from .events import WorkflowStarted


def load(target: str, *, cwd: str | None = None) -> WorkflowDefinition:
    """The workflow TARGET names; ``cwd`` is where relative paths and modules are found."""
    module_part, sep, name = target.rpartition(":")
    if not sep or not module_part or not name:
        raise TargetError(
            f"TARGET {target!r} should be module:Workflow or path/to/file.py:Workflow "
            "(e.g. samples/user_report.py:UserReportWorkflow)"
        )
    base = Path(cwd or os.getcwd())
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        module = _import_file(base / module_part, module_part)
    else:
        module = _import_module(module_part, base)
    return _find(module, name, target)


def load_recorded(started: WorkflowStarted) -> WorkflowDefinition:
    """The workflow a run was started with, found again from the TARGET and folder it recorded."""
    return load(started.target, cwd=started.cwd)


def fingerprint(path: str | None) -> str | None:
    """A short hash of a source file, to tell whether code changed (None: no such file)."""
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def target_file(target: str, cwd: str) -> str | None:
    """The file a TARGET's module is in, found without importing anything (None: not found
    there, e.g. an installed package)."""
    module_part = target.rpartition(":")[0]
    if module_part.endswith(".py") or "/" in module_part or os.sep in module_part:
        return str(Path(cwd) / module_part)
    base = Path(cwd, *module_part.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return str(candidate)
    return None


def canonical_target(target: str, *, cwd: str | None = None) -> str:
    """The TARGET with a file path made absolute, so that a resume works from anywhere."""
    module_part, _, name = target.rpartition(":")
    if module_part.endswith(".py") or "/" in module_part or os.sep in module_part:
        path = (Path(cwd or os.getcwd()) / module_part).resolve()
        return f"{path}:{name}"
    return target


def target_of(cls: type, *, by_file: bool = False) -> str:
    """A TARGET that finds ``cls`` again, for runs started from Python.

    ``by_file``: name its file even when it was imported as a module. A child run's code is
    then found from wherever its parent's was, whatever ``sys.path`` held there.
    """
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    from_file = cls.__module__ == "__main__" or cls.__module__.startswith("wfrun_target_")
    if (from_file or by_file) and filename:
        return f"{_resolved(filename)}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


#: Module files resolved by `target_of`, by absolute name: a script's workflow started many
#: times resolved its file each time (a system call per component of its path).
_resolved_files: dict[str, Path] = {}


def _resolved(filename: str) -> Path:
    found = _resolved_files.get(filename)
    if found is None:
        found = Path(filename).resolve()
        if os.path.isabs(filename):  # a relative one depends on the current folder
            _resolved_files[filename] = found
    return found


#: The module found for each file TARGET, by resolved path. Every message to a run loads its
#: TARGET again, and looking through sys.modules resolves every module's path: ~8 ms with two
#: hundred modules, ten times the message's own post. Trusted only while sys.modules still
#: holds that very module (a test that rewrites a module forgets it there).
_by_file: dict[Path, ModuleType] = {}


def _import_file(path: Path, shown: str) -> ModuleType:
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise TargetError(f"cannot load {shown}: the file {path} {reason}")
    resolved = path.resolve()
    known = _by_file.get(resolved)
    if known is not None and sys.modules.get(known.__name__) is known:
        return known
    _by_file[resolved] = module = _find_or_import_file(resolved, shown)
    return module


def _find_or_import_file(resolved: Path, shown: str) -> ModuleType:
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if filename and Path(filename).resolve() == resolved:
            return module  # already imported (a second run of the same file in one process)
    root, dotted = _package_path(resolved)
    if dotted is not None:
        return _import_module(dotted, root)
    name = "wfrun_target_" + "".join(c if c.isalnum() else "_" for c in resolved.stem)
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {shown}: {resolved} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TargetError(f"importing {shown} failed:\n{_user_traceback(exc)}") from exc
    return module


def _package_path(path: Path) -> tuple[Path, str | None]:
    """The folder to import from and the dotted name, for a file inside a package."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return (folder, ".".join(parts)) if len(parts) > 1 else (path.parent, None)


def _import_module(dotted: str, base: Path) -> ModuleType:
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name and (dotted == exc.name or dotted.startswith(exc.name + ".")):
            raise TargetError(
                f"cannot load {dotted}: no module named {exc.name!r} (looked in {base} and "
                "the installed packages); for a file, write path/to/file.py:Workflow"
            ) from None
        raise TargetError(f"importing {dotted} failed:\n{_user_traceback(exc)}") from exc
    except Exception as exc:
        raise TargetError(f"importing {dotted} failed:\n{_user_traceback(exc)}") from exc


def _find(module: ModuleType, name: str, target: str) -> WorkflowDefinition:
    workflows: dict[int, WorkflowDefinition] = {}
    for value in vars(module).values():
        definition = workflow_definition_of(value) if inspect.isclass(value) else None
        if definition is not None:
            workflows[id(definition.cls)] = definition
    matches = {id(d.cls): d for d in workflows.values() if name in (d.cls.__name__, d.name)}
    if len(matches) == 1:
        return next(iter(matches.values()))
    if len(matches) > 1:
        listed = ", ".join(f"class {d.cls.__name__} (name {d.name!r})" for d in matches.values())
        raise TargetError(
            f"{target} is ambiguous: {name!r} names several workflows: {listed}; "
            "use the class name of the one you mean"
        )
    value = getattr(module, name, None)
    available = (
        ", ".join(
            sorted(
                f"{d.cls.__name__}" + (f" ({d.name!r})" if d.name != d.cls.__name__ else "")
                for d in workflows.values()
            )
        )
        or "none"
    )
    if activity_definition_of(value) is not None:
        raise TargetError(
            f"{target} names an activity, not a workflow: start a workflow class "
            f"(workflows here: {available})"
        )
    if value is not None:
        kind = "class" if inspect.isclass(value) else type(value).__name__
        raise TargetError(
            f"{target} names a {kind} that is not a workflow: decorate it with "
            f"@workflows.workflow.define (workflows here: {available})"
        )
    raise TargetError(
        f"{target}: {module.__name__.removeprefix('wfrun_target_')} has no workflow {name!r} "
        f"(workflows here: {available})"
    )


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_traceback(exc: BaseException) -> str:
    """The traceback without the import machinery's frames, nor wfrun's own (a decorator
    refusing what it was given): where the user's code broke."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "importlib" not in f.filename and not f.filename.startswith(_PACKAGE)
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(exc)
    return "".join(lines).rstrip()
