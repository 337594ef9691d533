"""Asking a person, on the terminal, for an input a workflow waits for (`wait_for_input`).

The form asks for each field of the pydantic schema in turn, then validates the whole; the
fields that do not validate are asked again, with the reason, until the answer fits. Text a
person types is taken as is for a text field and read as JSON for any other (``42``,
``true``, ``["a", "b"]``), falling back to the text itself, so that the schema's own
validation decides and explains.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console
from rich.live import Live
from rich.prompt import Prompt

from .render import inline

if TYPE_CHECKING:
    from pydantic import BaseModel


class TerminalForm:
    """An `wfrun.runs.InputPrompt` that asks on the terminal, pausing any live view."""

    def __init__(self, console: Console) -> None:
        self.console = console
        #: The live progress view, paused while a person types.
        self.live: Live | None = None

    def __call__(self, label: str, schema: type[BaseModel]) -> dict[str, Any]:
        with self._paused():
            self.console.print(f"[bold]The workflow asks for {inline(label)}[/]")
            answers: dict[str, Any] = {}
            missing = list(schema.model_fields)
            while True:
                for name in missing:
                    answers[name] = self._field(schema, name)
                problems = _problems(schema, answers)
                if not problems:
                    return schema.model_validate(answers).model_dump(mode="json")
                for name, why in problems.items():
                    self.console.print(f"[red]{inline(name)}: {inline(why)}[/]")
                missing = [name for name in schema.model_fields if name in problems] or missing

    def _field(self, schema: type[BaseModel], name: str) -> Any:
        field = schema.model_fields[name]
        hint = f" ({inline(field.description)})" if field.description else ""
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        shown = "" if default is None else f" [dim]\\[{inline(_text(default))}][/]"
        answer = Prompt.ask(
            f"  {inline(name)}{hint}{shown}", console=self.console, show_default=False, default=""
        )
        if answer == "" and not field.is_required():
            return default
        if field.annotation is str:
            return answer
        try:
            return orjson.loads(answer)
        except orjson.JSONDecodeError:
            return answer  # the schema says what it wanted instead

    @contextlib.contextmanager
    def _paused(self) -> Iterator[None]:
        live = self.live
        if live is not None:
            live.stop()
        try:
            yield
        finally:
            if live is not None:
                live.start()


def _problems(schema: type[BaseModel], answers: dict[str, Any]) -> dict[str, str]:
    """What is wrong with the answers, by field name (a whole-form problem under all)."""
    from pydantic import ValidationError

    try:
        schema.model_validate(answers)
    except ValidationError as exc:
        found: dict[str, str] = {}
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else ""
            names = [where] if where in schema.model_fields else list(schema.model_fields)
            for name in names:
                found.setdefault(name, error["msg"])
        return found
    return {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
