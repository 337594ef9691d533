"""Values in and out of the history: JSON encoding, typed decoding, the size limit.

Everything a workflow exchanges with the world (activity inputs and results, the workflow's own
input and result) is encoded once, with orjson, into the bytes that the history stores. The
workflow then receives the value *decoded from those bytes* against the annotation of the
function, live and on replay alike: a replayed ``ApiResponse`` is an ``ApiResponse``, and a
live run cannot observe anything a replay would not.

Encoded: the JSON builtins, tuples (as lists), sets (as sorted lists, so that the bytes do not
depend on hash seeds), ``datetime``/``date``/``time`` (ISO 8601, offset kept), ``UUID``,
``Enum`` (its value), ``Decimal`` (a string), ``bytes`` (base64), dataclasses, and pydantic
models (``model_dump(mode="json")``, so bytes inside a model follow that model's own
``ser_json_bytes``), and anything else pydantic serializes (``HttpUrl``, ``IPv4Address``,
``Path``, ...) as pydantic does. Dict keys that are not strings become strings, as JSON
requires.

Decoding goes through pydantic in JSON mode, so the annotation decides the type: ``-> dict``
gives a dict, ``-> ApiResponse`` an ``ApiResponse``, ``-> tuple[int, str]`` a tuple.
"""

from __future__ import annotations

import base64
import decimal
import inspect
import math
import sys
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Final

import orjson

from .errors import EncodingError, InputError, PayloadTooLargeError
from .events import Encoded
from .settings import format_size

if TYPE_CHECKING:
    from pydantic import ConfigDict

_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # orjson calls this for every type it does not encode natively.
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return _sorted(value)
    pydantic = sys.modules.get("pydantic")  # never import pydantic just to look
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    return _as_pydantic_would(value)


def _as_pydantic_would(value: Any) -> Any:
    """Whatever else pydantic validates it also serializes (``HttpUrl``, ``IPv4Address``,
    ``Path``, ...): a type wfrun accepts on the way in must not be refused on the way out."""
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(value, bytes_mode="base64")
    except PydanticSerializationError:
        raise TypeError(type(value).__qualname__) from None


def _sorted(items: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:  # mixed or unorderable members: order by their encoding instead
        return sorted(items, key=lambda item: orjson.dumps(item, default=_default, option=_OPTIONS))


def encode(value: Any, *, subject: str) -> bytes:
    """The JSON bytes of ``value``; `EncodingError` naming ``subject`` and the offending type.

    Example::

        encode({"user_id": 42}, subject="input of activity 'fetch_user'")  # b'{"user_id":42}'
    """
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, ValueError, UnicodeError) as exc:
        culprit = exc.__cause__ or exc
        kind = str(culprit) if isinstance(culprit, TypeError) else repr(culprit)
        raise EncodingError(
            f"{subject} cannot be encoded as JSON: {kind} is not supported. Use JSON builtins, "
            "datetime, UUID, Enum, Decimal, bytes, dataclasses or pydantic models."
        ) from None


def encode_arguments(arguments: Mapping[str, Any], *, subject: str) -> bytes:
    """Encode an input (parameter name → value); an error names the offending parameter."""
    try:
        return orjson.dumps(arguments, default=_default, option=_OPTIONS)
    except (TypeError, ValueError, UnicodeError):
        for name, value in arguments.items():
            encode(value, subject=f"argument {name!r} of {subject}")
        raise  # every argument encodes alone, so the failure is elsewhere: show it as is


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Bytes of an already-encoded JSON value (one read back from a history)."""
    return orjson.dumps(value)


def raw(value: Any) -> bytes:
    """The encoded bytes of a payload field, as the writer holds it or as read back."""
    # orjson and pydantic read exact bytes only: hand them a plain copy.
    return bytes(value) if isinstance(value, Encoded) else orjson.dumps(value)


def plain(value: Any) -> Any:
    """A payload field as a plain JSON value, whichever form it is in."""
    return orjson.loads(bytes(value)) if isinstance(value, Encoded) else value


# -- the size limit --------------------------------------------------------------------------


def check_size(
    data: bytes, *, limit: int, side: str, activity: str | None = None, workflow: str | None = None
) -> None:
    """Raise `PayloadTooLargeError` when ``data`` (an ``activity``'s or a ``workflow``'s
    ``side``, "input" or "output") is over ``limit`` bytes."""
    if len(data) > limit:
        owner = f"activity {activity!r}" if activity is not None else f"workflow {workflow!r}"
        raise PayloadTooLargeError(
            f"the {side} of {owner} is {format_size(len(data))} ({len(data):,} bytes), over the "
            f"{format_size(limit)} limit ({limit:,} bytes). Pass a reference (a path, a URL, "
            "an object key) instead of the data, or raise the limit explicitly with "
            "--max-payload, WFRUN_MAX_PAYLOAD or @activity(max_payload=...).",
            activity=activity,
            workflow=workflow,
            side=side,
            size=len(data),
            limit=limit,
        )


# -- typed decoding --------------------------------------------------------------------------


class Signature:
    """The typed shape of a function's input and result, for encoding and decoding them.

    Built lazily on first use: annotations may name classes defined later in the module.
    """

    def __init__(self, fn: Callable[..., Any], *, owner: str, skip_first: bool = False) -> None:
        self._fn = fn
        self.owner = owner
        parameters = list(inspect.signature(fn).parameters.values())
        self.parameters = parameters[1:] if skip_first else parameters
        self._names = tuple(p.name for p in self.parameters)
        # Plain positional-or-keyword parameters bind without inspect (the per-call path).
        self._plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in self.parameters)
        self._input_model: Any = None
        self._result_model: Any = None
        self._hints: dict[str, Any] | None = None
        #: Each parameter's name with its field's name in the input model.
        self._fields = tuple((p.name, f"p{i}") for i, p in enumerate(self.parameters))
        #: Per parameter, the exact types whose values come back unchanged from their JSON
        #: (see `unchanged_input`); None until first asked, () when some parameter has none.
        self._same_inputs: tuple[tuple[str, frozenset[type]], ...] | None = None
        #: The same for the result (see `unchanged_result` and `decode_value`).
        self._same_result: frozenset[type] | None = None
        #: Those types once `unchanged_result` was first asked (empty until then): a value of
        #: one of them, but a float, passes unchanged, for a caller that tests it inline.
        self.result_types: frozenset[type] = frozenset()
        #: A call's arguments by name, as `bind` gives them, if they are passed by position,
        #: one per parameter, and `unchanged_input` says True of them; else None (bind them,
        #: and ask). Made from what `unchanged_input` found when first asked (None until then):
        #: every activity call binds and asks, and this is one call of straight code instead
        #: of `bind`'s and `unchanged_input`'s loop over the parameters.
        self.plain_arguments: Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any] | None]
        self.plain_arguments = _no_plain_arguments
        #: `plain_arguments` for a replay, which compares a call's arguments with the recorded
        #: ones as values and needs no encoding of them: the same arguments, given only if
        #: their encoding is also sure to succeed and to fit ``limit`` bytes (`check_size`),
        #: as the encoding would tell (the ints JSON holds, a bound on the encoding's length);
        #: else None (encode them). Made when `plain_arguments` is.
        self.replayed_arguments: Callable[
            [tuple[Any, ...], dict[str, Any], int], dict[str, Any] | None
        ]
        self.replayed_arguments = _no_replayed_arguments

    def hints(self) -> dict[str, Any]:
        if self._hints is None:
            try:
                self._hints = typing.get_type_hints(self._fn, include_extras=True)
            except Exception as exc:  # a name the annotations use is not defined
                raise InputError(f"cannot read the type hints of {self.owner}: {exc}") from exc
        return self._hints

    def annotation(self, name: str) -> Any:
        return self.hints().get(name, Any)

    @property
    def result_annotation(self) -> Any:
        return self.hints().get("return", Any)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, defaults applied, as a call would bind them."""
        if self._plain and not kwargs and len(args) == len(self._names):
            # Lengths compared just above: zip's ``strict`` keyword alone cost as much again.
            return dict(zip(self._names, args))  # noqa: B905
        try:
            bound = inspect.Signature(self.parameters).bind(*args, **kwargs)
        except TypeError as exc:
            raise InputError(f"{self.owner}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def call_arguments(self, values: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Split decoded values into positional and keyword arguments for the real call."""
        if self._plain:
            names = self._names
            if len(values) == len(names):  # every one (values name no others): no comprehension
                return list(map(values.__getitem__, names)), {}
            return [values[name] for name in names if name in values], {}
        positional, keywords = [], {}
        for p in self.parameters:
            if p.name not in values:
                continue
            if p.kind is p.KEYWORD_ONLY:
                keywords[p.name] = values[p.name]
            else:
                positional.append(values[p.name])
        return positional, keywords

    def decode_input(self, data: bytes) -> dict[str, Any]:
        """Validate encoded arguments against the parameter annotations; `InputError` if off."""
        model = self._input_model or self._build_input_model()
        try:
            # model_validate_json without its Python layer: replay calls this once per step.
            validated = model.__pydantic_validator__.validate_json(data)
        except Exception as exc:
            from pydantic import ValidationError

            if isinstance(exc, ValidationError):
                raise InputError(f"input of {self.owner} is invalid: {explain(exc)}") from None
            raise
        return {name: getattr(validated, field) for name, field in self._fields}

    def unchanged_input(self, arguments: dict[str, Any]) -> bool:
        """Whether `decode_input` of these arguments' encoding would give them back as they are.

        True only for plain values of the exact type their annotation names (``int``, ``str``,
        ``bool``, a finite ``float``, ``None``; any of those for ``Any``): their JSON decodes,
        and validates, to an equal value of the same type. The caller then skips the decoding,
        which is most of what a call with such arguments costs; anything else is decoded.
        """
        same = self._same_inputs
        if same is None:
            same = self._same_inputs = self._unchanged_inputs()
            if same:
                self.plain_arguments, self.replayed_arguments = _compile_plain_arguments(same)
        if not same or len(arguments) != len(same):
            return False
        try:
            for name, types in same:
                value = arguments.get(name, _MISSING)
                kind = type(value)
                if kind not in types or (kind is float and not math.isfinite(value)):
                    return False
        except TypeError:  # a class whose metaclass cannot be hashed: no plain value
            return False
        return True

    def unchanged_result(self, value: Any) -> bool:
        """Whether `decode_result` of ``value``'s encoding would give ``value`` back as it is
        (as `unchanged_input` says it for arguments)."""
        same = self._same_result
        if same is None:
            same = self._same_result = self.result_types = _same_types(self.result_annotation)
        kind = type(value)
        try:
            return kind in same and (kind is not float or math.isfinite(value))
        except TypeError:  # a class whose metaclass cannot be hashed: no plain value
            return False

    def _unchanged_inputs(self) -> tuple[tuple[str, frozenset[type]], ...]:
        if not self._plain:
            return ()
        found = tuple((p.name, _same_types(self.annotation(p.name))) for p in self.parameters)
        return found if all(types for _, types in found) else ()

    def decode_result(self, data: bytes) -> Any:
        """Validate an encoded result against the return annotation (pydantic errors pass up)."""
        annotation = self.result_annotation
        if annotation is Any or annotation is object:
            return orjson.loads(data)
        model = self._result_model or self._build_result_model(annotation)
        return model.model_validate_json(b'{"result":' + data + b"}").result

    def decode_value(self, value: Any) -> Any:
        """`decode_result` of a result as read back from a history (a plain JSON value).

        A value whose JSON type is the very type of a plain annotation (``int`` and an int,
        ``str`` and a string, ``float``, ``bool``, ``None``; any scalar for ``Any``) is what
        validating it would give: it is returned as it is, with no encoding and decoding
        again. Anything else is validated as `decode_result` does.
        """
        if self.unchanged_result(value):
            return value
        return self.decode_result(raw(value))

    def _build_input_model(self) -> Any:
        from pydantic import ConfigDict, Field, create_model

        fields: dict[str, Any] = {}
        for i, p in enumerate(self.parameters):
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise InputError(f"{self.owner} takes *args or **kwargs: name every parameter")
            default = ... if p.default is p.empty else p.default
            # Aliases keep parameter names such as "json" or "schema" from clashing with
            # BaseModel's own attributes.
            fields[f"p{i}"] = (self.annotation(p.name), Field(default, alias=p.name))
        self._input_model = create_model(
            "Input", __config__=ConfigDict(**_CONFIG, extra="forbid"), **fields
        )
        return self._input_model

    def _build_result_model(self, annotation: Any) -> Any:
        from pydantic import ConfigDict, create_model

        self._result_model = create_model(
            "Output", __config__=ConfigDict(**_CONFIG), result=(annotation, ...)
        )
        return self._result_model


_MISSING: Final = object()


def _no_plain_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    return None


def _no_replayed_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], limit: int) -> None:
    return None


#: The ints orjson encodes (64 bits, signed or not); it refuses any other.
_JSON_INTS: Final = (-(2**63), 2**64 - 1)
#: The longest encoding of a plain value other than a string: an int's is at most 20
#: characters, a finite float's at most 24 (17 digits, sign, point, exponent).
_SCALAR_LENGTH: Final = 32
#: The longest encoding of one character of a string: ``\u001f``.
_CHARACTER_LENGTH: Final = 6


def _compile_plain_arguments(
    same: tuple[tuple[str, frozenset[type]], ...],
) -> tuple[
    Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any] | None],
    Callable[[tuple[Any, ...], dict[str, Any], int], dict[str, Any] | None],
]:
    """`Signature.plain_arguments` and `Signature.replayed_arguments` for parameters ``same``
    (`Signature._unchanged_inputs`'s, not empty): `unchanged_input`'s tests unrolled, on the
    arguments as passed."""
    namespace: dict[str, Any] = {"ISFINITE": math.isfinite}
    values = [f"a{i}" for i in range(len(same))]
    head = [
        f"    if kwargs or len(args) != {len(same)}:",
        "        return None",
        f"    {', '.join(values)}, = args",
        # A class whose metaclass cannot be hashed (``__eq__`` without ``__hash__``) fails
        # the set lookup: such a value is no plain one, and bind and the encoding say what
        # it is (a try costs nothing until it catches, on 3.11+).
        "    try:",
    ]
    tests = list(head)
    for i, (_, types) in enumerate(same):
        namespace[f"T{i}"] = types
        tests += [f"        if type(a{i}) not in T{i}:", "            return None"]
        if float in types:  # NaN and the infinities are no JSON: encoding refuses them
            tests += [
                f"        if type(a{i}) is float and not ISFINITE(a{i}):",
                "            return None",
            ]
    # Parameter names are identifiers: their reprs are plain string literals. (Returned
    # inside the try: no jump past the handler.)
    pairs = ", ".join(f"{name!r}: a{i}" for i, (name, _) in enumerate(same))
    returned = [f"        return {{{pairs}}}"]
    # Replay's: the same tests, and what the encoding would refuse, or find too long, left
    # to it. Each value's type is asked once (replay runs this at every step), and not
    # tested again where its parameter takes that one type only.
    low, high = _JSON_INTS
    replayed = list(head)
    # Braces, and per parameter its encoded name, a colon and a comma.
    length = 2 + sum(len(orjson.dumps(name)) + 2 + _SCALAR_LENGTH for name, _ in same)
    strings = []
    for i, (_, types) in enumerate(same):
        replayed += [f"        if (t{i} := type(a{i})) not in T{i}:", "            return None"]
        for kind, test in (
            (float, f"not ISFINITE(a{i})"),
            (int, f"not {low} <= a{i} <= {high}"),
        ):
            if kind in types:
                alone = types == {kind}
                replayed += [
                    f"        if {test if alone else f't{i} is {kind.__name__} and {test}'}:",
                    "            return None",
                ]
        if str in types:  # its quotes are in _SCALAR_LENGTH
            strings.append(f"len(a{i})" if types == {str} else f"(len(a{i}) if t{i} is str else 0)")
    if strings:
        replayed += [
            f"        if {length} + {_CHARACTER_LENGTH} * ({' + '.join(strings)}) > limit:",
            "            return None",
        ]
    else:
        replayed += [f"        if {length} > limit:", "            return None"]
    lines = ["def plain_arguments(args, kwargs):", *tests, *returned]
    lines += ["    except TypeError:", "        return None"]
    # Replay's gives up on anything its tests raise (a metaclass whose hash raises other than
    # TypeError): the ordinary path then raises it as live does, once the call's future took
    # its key, so that every later future keeps its hash.
    lines += ["def replayed_arguments(args, kwargs, limit):", *replayed, *returned]
    lines += ["    except Exception:", "        return None"]
    exec("\n".join(lines), namespace)
    return namespace["plain_arguments"], namespace["replayed_arguments"]


#: Plain JSON values that decode, and validate, to an equal value of the same exact type.
_PLAIN_SCALARS: Final[frozenset[type]] = frozenset({int, str, bool, float, type(None)})


def _same_types(annotation: Any) -> frozenset[type]:
    """The exact types whose values pass through JSON and validation against ``annotation``
    unchanged: the annotation's own when it is such a scalar, all of them for ``Any``."""
    if annotation is Any or annotation is object:
        return _PLAIN_SCALARS
    if annotation is None or annotation is type(None):
        return frozenset({type(None)})
    # Compared by identity, not looked up: a class whose metaclass cannot be hashed is no
    # scalar, and must not raise here. A subclass is decoded.
    if isinstance(annotation, type) and any(annotation is plain for plain in _PLAIN_SCALARS):
        return frozenset({annotation})
    return frozenset()


_CONFIG: Final[ConfigDict] = {
    "val_json_bytes": "base64",
    "ser_json_bytes": "base64",
    "arbitrary_types_allowed": True,
}


def explain(exc: Exception) -> str:
    """One line per pydantic error: ``user.age: Input should be a valid integer (got 'x')``."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    lines = []
    for error in errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "value"
        got = error.get("input")
        shown = f" (got {abbreviate(got, 40)})" if error["type"] != "missing" else ""
        lines.append(f"{location}: {error['msg']}{shown}")
    return "; ".join(lines)


def describe_call(name: str, arguments: Any) -> str:
    """``activity fetch(user_id="42")``: an activity call as messages show it."""
    if isinstance(arguments, dict):
        shown = ", ".join(f"{k}={abbreviate(v, 40)}" for k, v in arguments.items())
    else:
        shown = abbreviate(arguments)
    return f"activity {name}({shown})"


def annotation_name(annotation: Any) -> str:
    """``ApiResponse``, ``list[int]``: an annotation as a message names it."""
    return getattr(annotation, "__name__", None) or str(annotation)


def result_advice(annotation: Any, value: Any) -> str:
    """How to fix a result that does not fit its return annotation."""
    name = annotation_name(annotation)
    return (
        f"return a value that fits {name}, or annotate what it returns (-> {type(value).__name__})"
    )


def describe_child(workflow: str, run_id: str, arguments: Any) -> str:
    """``child workflow 'ship' (run order-1-3) with {"order": 1}``, as messages show it."""
    return f"child workflow {workflow!r} (run {run_id}) with {abbreviate(arguments)}"


def abbreviate(value: Any, width: int = 60) -> str:
    """A short JSON rendering of a value for messages and tables."""
    try:
        text = orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
