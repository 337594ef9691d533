"""What ``--help`` and a bare ``wfrun`` teach: an example per command, real metavars, an overview.

typer names a required argument ``{run_id}`` in the usage line and gives every parameter a type
column (``<bool>`` for a flag, ``<str>`` for an argument). `Command` shows instead what a user
types: ``RUN_ID``, ``[RUN_ID]``, and no type beside a flag or an argument.
"""

from __future__ import annotations

from typing import Any, Final

from typer.core import TyperArgument, TyperCommand, TyperGroup

#: Where the Temporal examples find a cluster (`temporal server start-dev`'s address).
_CLUSTER: Final = "127.0.0.1:7233"

#: One runnable example per command, shown at the end of its ``--help``. They follow one run of
#: ``samples/approval.py``, from wfrun's source folder (where ``samples/`` is).
EXAMPLES: Final = {
    "start": "wfrun start samples/approval.py:ExpenseApproval -a amount=420 --run-id exp-1\n"
    "wfrun start samples/user_report.py:UserReportWorkflow -a user_id=42 --run-id report-42 "
    f"--temporal {_CLUSTER}   (on Temporal, served by `wfrun worker`)",
    "query": "wfrun query exp-1 status",
    "signal": """wfrun signal exp-1 approve '{"approver": "ada"}'""",
    "update": """wfrun update exp-1 set_limit '{"limit": 10}'   (a workflow with that update)""",
    "cancel": "wfrun cancel exp-1 --reason 'no longer needed'",
    "resume": "wfrun resume exp-1\nwfrun resume --all --json   (from cron: all that can go on)",
    "history": "wfrun history exp-1\nwfrun history exp-1 --json | jq -r .type\n"
    f"wfrun history report-42 --temporal {_CLUSTER}",
    "list": "wfrun list --status waiting\nwfrun list --json | jq -r '.[].run_id'",
    "show": "wfrun show exp-1\nwfrun show exp-1 --event 1   (one whole event, as JSON)\n"
    f"wfrun show report-42 --temporal {_CLUSTER}",
    "replay": "wfrun replay exp-1\n"
    f"wfrun replay report-42 --temporal {_CLUSTER} "
    "--target samples/user_report.py:UserReportWorkflow",
    "worker": "temporal server start-dev   (in another terminal: a local Temporal cluster)\n"
    "wfrun worker samples/user_report.py:UserReportWorkflow --temporal 127.0.0.1:7233",
}

OVERVIEW: Final = """\
wfrun runs durable async Python workflows on one machine, with no server: every event of a
run goes to a JSON Lines history, and a crashed or stopped run carries on where it stopped.

Main commands:
  start TARGET     start a run of a workflow (module:Class or file.py:Class) and follow it
  resume RUN_ID    carry a run on from its history (--all: every run that can go on)
  list             the runs, with their status
  history RUN_ID   a run's events, one per row
  show RUN_ID      one run: status, input, result or error (--event N: one whole event)
  signal, update, query, cancel, replay: talk to a run, check today's code against it

Runs live under --home DIR, else $WFRUN_HOME, else ./.wfrun (one file per run).

Try:   wfrun start samples/user_report.py:UserReportWorkflow --arg user_id=42
       (from wfrun's source folder, where samples/ is)
Help:  wfrun COMMAND --help (each shows an example), wfrun --help, wfrun --version
"""


def epilog(command: str) -> str:
    """The end of ``wfrun COMMAND --help``: its example, kept as written (no markup)."""
    return "Example:\n\n" + EXAMPLES[command].replace("[", r"\[")


class _PlainHelpOption:
    """``--help`` is a flag: no ``<bool>`` beside it."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class Group(_PlainHelpOption, TyperGroup):
    """The ``wfrun`` group itself."""


class Command(_PlainHelpOption, TyperCommand):
    """A typer command whose help shows arguments by their metavar, without type columns."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                # An argument's metavar (RUN_ID) already says what it is: no "<str>" beside it.
                param.display_type_rich = _no_type  # type: ignore[method-assign]

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or param.name or ""
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def _no_type(ctx: Any) -> None:
    return None
