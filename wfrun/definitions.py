"""Workflows and activities as the engines see them: what the decorators attach to user code.

`ActivityDefinition` is an activity's function, options and typed signature; `WorkflowDefinition`
a workflow's class, entrypoint and typed input and result. Both are plain data: nothing here
runs anything, so every backend (and the watchdog naming a blocking activity) can read them.

An entrypoint's input is a JSON object of its arguments by name. Mistral Workflows'
convention is kept: an entrypoint whose single parameter is a pydantic model (or a dataclass)
takes *that model's fields* as its input, so ``run(self, params: HelloInput)`` is started with
``--arg name=Ada`` and recorded as ``{"name": "Ada"}``.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import CodeType
from typing import Any, Final

import orjson

from .errors import DefinitionError, InputError, UsageError
from .payload import Signature, abbreviate, encode, encode_arguments, explain
from .policy import ActivityOptions

#: Activity functions by code object: how the blocking watchdog names the culprit.
_ACTIVITY_CODE: Final[dict[CodeType, str]] = {}
#: Every activity decorated in this process, by name: what a worker of a cluster serves.
_ACTIVITIES: Final[dict[str, ActivityDefinition]] = {}


class ActivityDefinition:
    """An activity as the engine sees it: the function, its options, its typed signature."""

    __slots__ = ("fn", "is_async", "name", "options", "signature")

    def __init__(self, fn: Callable[..., Any], options: ActivityOptions) -> None:
        self.fn = fn
        self.name = options.name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = Signature(fn, owner=f"activity {options.name!r}")
        refuse_what_pydantic_cannot_take(fn, owner=f"activity {options.name!r}")
        _ACTIVITY_CODE[fn.__code__] = self.name
        _ACTIVITIES[self.name] = self


def refuse_what_pydantic_cannot_take(fn: Callable[..., Any], *, owner: str) -> None:
    """A `DefinitionError` now, rather than a failed call after the side effect, for an
    annotation that pydantic refuses: ``typing.TypedDict`` before Python 3.12.

    Annotations that cannot be resolved yet (a class defined further down) are left to the
    first call, which reads them then.
    """
    if sys.version_info >= (3, 12):
        return
    import typing

    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return
    for name, annotation in hints.items():
        legacy = _legacy_typeddict(annotation)
        if legacy is not None:
            what = "its return annotation" if name == "return" else f"parameter {name!r}"
            raise DefinitionError(
                f"{owner}: {what} uses {legacy.__name__}, a typing.TypedDict, which pydantic "
                "cannot validate before Python 3.12: write `from typing_extensions import "
                "TypedDict` where it is defined"
            )


def _legacy_typeddict(annotation: Any) -> Any:
    """The ``typing.TypedDict`` class in ``annotation`` (or its arguments), if any."""
    import typing

    if typing.is_typeddict(annotation) and type(annotation).__module__ == "typing":
        return annotation
    for argument in typing.get_args(annotation):
        found = _legacy_typeddict(argument)
        if found is not None:
            return found
    return None


def activity_definition_of(obj: Any) -> ActivityDefinition | None:
    """The activity behind a decorated function, or None."""
    return getattr(obj, "__wfrun_activity__", None)


def decorated_activities() -> dict[str, ActivityDefinition]:
    """Every activity decorated so far in this process, by name (the latest of a name wins)."""
    return dict(_ACTIVITIES)


def activity_name_at(code: CodeType) -> str | None:
    """The name of the activity whose function body ``code`` is, if any."""
    return _ACTIVITY_CODE.get(code)


class HandlerDefinition:
    """A message handler of a workflow: a signal (changes the run), an update (changes it and
    answers), or a query (reads it).

    Its input is a JSON object of the method's arguments by name, as an entrypoint's is.
    """

    __slots__ = ("fn", "is_async", "kind", "name", "signature", "validator")

    def __init__(self, fn: Callable[..., Any], *, kind: str, name: str, workflow: str) -> None:
        self.fn = fn
        #: An update's validator: called with the same arguments first; raising refuses it.
        self.validator: Callable[..., Any] | None = getattr(fn, "__wfrun_validator__", None)
        self.kind = kind
        self.name = name
        self.is_async = inspect.iscoroutinefunction(fn)
        owner = f"{kind} {name!r} of workflow {workflow!r}"
        self.signature = Signature(fn, owner=owner, skip_first=True)

    def encode_input(self, params: Mapping[str, Any] | None) -> bytes:
        """Validate arguments by name against the handler's type hints, and encode them.

        A handler whose single parameter is a pydantic model or a dataclass takes that
        model's fields, as an entrypoint does: ``{"approver": "ada"}`` for
        ``def approve(self, approval: Approval)``; ``{"approval": {...}}`` names the argument,
        unless the model has a field of that name: then it is a field.
        """
        subject = f"the input of {self.signature.owner}"
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise InputError(f"{subject} must be a JSON object of arguments by name")
        single = self._single_model_parameter()
        if single is not None and (set(params) != {single} or single in self._fields_of(single)):
            params = {single: dict(params)}
        known = [p.name for p in self.signature.parameters]
        unknown = [name for name in params if name not in known]
        if unknown:
            takes = ", ".join(known) or "no arguments"
            raise InputError(
                f"{self.signature.owner} has no parameter {unknown[0]!r}; it takes: {takes}"
            )
        values = self.signature.decode_input(encode_arguments(params, subject=subject))
        return encode_arguments(values, subject=subject)

    def _single_model_parameter(self) -> str | None:
        """The name of the handler's only parameter, when it is a model or a dataclass."""
        parameters = self.signature.parameters
        if len(parameters) != 1:
            return None
        annotation = self.signature.annotation(parameters[0].name)
        return parameters[0].name if _is_model_or_dataclass(annotation) else None

    def _fields_of(self, parameter: str) -> set[str]:
        """The field names of the model or dataclass a parameter is annotated with."""
        annotation = self.signature.annotation(parameter)
        if dataclasses.is_dataclass(annotation):
            return {f.name for f in dataclasses.fields(annotation)}
        return set(annotation.model_fields)


class WorkflowDefinition:
    """What ``@workflows.workflow.define`` attaches to a workflow class."""

    def __init__(
        self,
        cls: type,
        *,
        name: str,
        entrypoint: Callable[..., Any],
        description: str | None,
        display_name: str | None,
        execution_timeout: timedelta | None,
        determinism_warnings: bool,
        handlers: Mapping[tuple[str, str], Callable[..., Any]] | None = None,
        failure_exception_types: tuple[str, ...] = (),
    ) -> None:
        self.cls = cls
        #: Exception class names that fail the run like an application error (not BLOCKED).
        self.failure_exception_types = failure_exception_types
        self.name = name
        self.entrypoint = entrypoint
        self.description = description
        self.display_name = display_name
        self.execution_timeout = execution_timeout
        self.determinism_warnings = determinism_warnings
        self.signature = Signature(entrypoint, owner=f"workflow {name!r}", skip_first=True)
        refuse_what_pydantic_cannot_take(entrypoint, owner=f"workflow {name!r}")
        #: Message handlers by kind ("signal", "query") and name.
        self.handlers = {
            (kind, handler_name): HandlerDefinition(fn, kind=kind, name=handler_name, workflow=name)
            for (kind, handler_name), fn in (handlers or {}).items()
        }

    def handler(self, kind: str, name: str) -> HandlerDefinition:
        """The ``kind`` handler called ``name``; `UsageError` listing the defined ones if none."""
        found = self.handlers.get((kind, name))
        if found is None:
            defined = sorted(n for k, n in self.handlers if k == kind)
            raise UsageError(
                f"workflow {self.name!r} has no {kind} {name!r}; it defines "
                + (", ".join(repr(n) for n in defined) if defined else f"no {kind}s")
            )
        return found

    def __repr__(self) -> str:
        return f"<workflow {self.name!r} ({self.cls.__module__}.{self.cls.__qualname__})>"

    # -- the single-model convention ---------------------------------------------------------

    @property
    def input_model(self) -> Any:
        """The pydantic model or dataclass the input *is*, when the entrypoint takes a single
        one; else None."""
        # Kept once found (a run asks three times): the type hints it comes from are read
        # once too (`Signature.hints`), and raise until they can be.
        found = self.__dict__.get("_model", _UNKNOWN)
        if found is _UNKNOWN:
            found = self.__dict__["_model"] = self._find_input_model()
        return found

    def _find_input_model(self) -> Any:
        parameters = self.signature.parameters
        if len(parameters) != 1:
            return None
        annotation = self.signature.annotation(parameters[0].name)
        return annotation if _is_model_or_dataclass(annotation) else None

    def parameter_types(self) -> dict[str, Any]:
        """The input's field names and their annotations (a model's fields, or parameters)."""
        model = self.input_model
        if model is not None:
            return {name: annotation for name, (annotation, _) in _fields(model).items()}
        return {p.name: self.signature.annotation(p.name) for p in self.signature.parameters}

    def _input_adapter(self) -> Any:
        """A pydantic ``TypeAdapter`` for the input model (a model or a dataclass)."""
        adapter = self.__dict__.get("_adapter")
        if adapter is None:
            from pydantic import TypeAdapter

            adapter = self.__dict__["_adapter"] = TypeAdapter(self.input_model)
        return adapter

    # -- input -------------------------------------------------------------------------------

    def encode_input(self, params: Any) -> bytes:
        """Validate ``params`` (a dict of arguments by name, or the input model) and encode it.

        Raises `InputError` naming the argument at fault, before anything runs.
        """
        model = self.input_model
        subject = f"the input of workflow {self.name!r}"
        if params is None:
            params = {}
        if model is not None and isinstance(params, model):
            return encode(params, subject=subject)
        if not isinstance(params, Mapping):
            raise InputError(
                f"{subject} must be a mapping of arguments by name"
                + (f" or a {model.__name__}" if model is not None else "")
                + f", not {type(params).__name__}"
            )
        self._check_names(params)
        if model is not None:
            from pydantic import ValidationError

            try:
                validated = self._input_adapter().validate_python(dict(params))
                return encode(validated, subject=subject)
            except ValidationError as exc:
                raise InputError(f"{subject} is invalid: {explain(exc)}") from None
        values = self.signature.decode_input(encode_arguments(params, subject=subject))
        return encode_arguments(values, subject=subject)

    def decode_input(self, data: bytes) -> tuple[list[Any], dict[str, Any]]:
        """The entrypoint's positional and keyword arguments from an encoded input."""
        model = self.input_model
        if model is not None:
            from pydantic import ValidationError

            try:
                return [self._input_adapter().validate_json(data)], {}
            except ValidationError as exc:
                raise InputError(
                    f"the input of workflow {self.name!r} is invalid: {explain(exc)}"
                ) from None
        return self.signature.call_arguments(self.signature.decode_input(data))

    def decode_result(self, data: bytes) -> Any:
        return self.signature.decode_result(data)

    def _check_names(self, params: Mapping[str, Any]) -> None:
        known = self.__dict__.get("_names")
        if known is None:  # the names alone, kept (their types are not asked here)
            known = self.__dict__["_names"] = tuple(self.parameter_types())
        unknown = [name for name in params if name not in known]
        if unknown:
            takes = ", ".join(known) if known else "no arguments"
            raise InputError(
                f"workflow {self.name!r} has no parameter {unknown[0]!r}; it takes: {takes}"
            )

    # -- the command line --------------------------------------------------------------------

    def arguments_from_cli(self, pairs: list[str], input_json: Any) -> dict[str, Any]:
        """Arguments from ``--input`` (a JSON object) and ``--arg NAME=VALUE`` pairs.

        VALUE is JSON when it parses as JSON, else a string. When the parameter is a string or
        a ``Decimal`` and VALUE parses as a number (``--arg user_id=42``, ``--arg total=9.90``),
        the text is kept as typed: the parameter's type decides, and no digit is lost.
        """
        if input_json is None:
            arguments: dict[str, Any] = {}
        elif isinstance(input_json, dict):
            arguments = dict(input_json)
        else:
            raise InputError(
                f"--input must be a JSON object of arguments by name, not {abbreviate(input_json)}"
            )
        types = self.parameter_types()
        given: set[str] = set()
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            name = name.strip()
            if not sep or not name:
                raise InputError(f"--arg {pair!r} is not NAME=VALUE")
            if name in given:
                raise InputError(f"--arg {name} is given twice: give each argument once")
            given.add(name)
            if name not in types:
                takes = ", ".join(types) if types else "no arguments"
                raise InputError(
                    f"--arg {name}: workflow {self.name!r} has no parameter {name!r}; "
                    f"it takes: {takes}"
                )
            arguments[name] = _cli_value(raw, types[name])
        missing = [name for name in self.required_names() if name not in arguments]
        if missing:
            raise InputError(
                f"missing argument {missing[0]!r} of workflow {self.name!r}: "
                f"pass --arg {missing[0]}=VALUE"
            )
        return arguments

    def required_names(self) -> list[str]:
        model = self.input_model
        if model is not None:
            return [name for name, (_, required) in _fields(model).items() if required]
        return [p.name for p in self.signature.parameters if p.default is p.empty]


#: `WorkflowDefinition.input_model` not looked for yet (None is an answer: no model).
_UNKNOWN: Final = object()


def _is_model_or_dataclass(annotation: Any) -> bool:
    if not inspect.isclass(annotation):
        return False
    pydantic = sys.modules.get("pydantic")
    model = pydantic is not None and issubclass(annotation, pydantic.BaseModel)
    return model or dataclasses.is_dataclass(annotation)


def _fields(cls: type) -> dict[str, tuple[Any, bool]]:
    """A pydantic model's or a dataclass's fields: name → (annotation, required)."""
    if not dataclasses.is_dataclass(cls):
        fields = cls.model_fields  # type: ignore[attr-defined]
        return {name: (f.annotation, f.is_required()) for name, f in fields.items()}
    import typing

    hints = typing.get_type_hints(cls)
    missing = dataclasses.MISSING
    return {
        f.name: (hints.get(f.name, Any), f.default is missing and f.default_factory is missing)
        for f in dataclasses.fields(cls)
        if f.init
    }


def _cli_value(raw: str, annotation: Any) -> Any:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(parsed, str) or not _wants_the_text(annotation):
        return parsed
    return raw


def _wants_the_text(annotation: Any) -> bool:
    """True for ``str`` and ``Decimal`` (or optional ones): ``42`` means "42", ``9.90`` 9.90."""
    import typing
    from decimal import Decimal

    options = typing.get_args(annotation) or (annotation,)
    textual = {str, Decimal}
    return any(o in textual for o in options) and int not in options and float not in options


def workflow_definition_of(cls: Any) -> WorkflowDefinition | None:
    """The definition attached to a workflow class, or None."""
    definition = getattr(cls, "__wfrun_workflow__", None)
    if isinstance(definition, WorkflowDefinition) and definition.cls is cls:
        return definition
    return None


def require_workflow_definition(cls: Any) -> WorkflowDefinition:
    definition = workflow_definition_of(cls)
    if definition is None:
        raise DefinitionError(
            f"{getattr(cls, '__qualname__', cls)!r} is not a workflow: decorate the class with "
            "@workflows.workflow.define and its entry method with @workflows.workflow.entrypoint"
        )
    return definition
