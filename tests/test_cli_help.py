"""Help that teaches: every command's ``--help`` ends with an example that runs, names its
arguments as a user types them, and ``wfrun`` alone gives an overview."""

from __future__ import annotations

import shlex

import pytest

from wfrun.cli.help import EXAMPLES

from conftest import ROOT, cli

COMMANDS = sorted(EXAMPLES)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_commands_help_ends_with_an_example_of_it(command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0
    example = result.stdout.split("Example:", 1)[1]
    assert f"wfrun {command} " in example


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_metavars_not_type_placeholders(command: str) -> None:
    shown = cli(command, "--help").stdout
    usage = shown.split("Usage:", 1)[1].splitlines()[0]
    assert "{" not in usage
    assert "<bool>" not in shown
    assert "<str>" not in shown


def test_help_names_arguments_in_capitals() -> None:
    shown = cli("signal", "--help").stdout
    assert "wfrun signal [OPTIONS] RUN_ID NAME [JSON|@FILE]" in shown


def test_the_examples_run_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """start (waits for approval: 75), query, signal (completes it), then the readers."""
    monkeypatch.chdir(ROOT)  # where samples/ is; runs still go to the test's WFRUN_HOME
    expected = {"start": 75, "query": 0, "signal": 0}
    order = ["start", "query", "signal", "resume", "history", "list", "show", "replay"]
    for command in order:
        for line in EXAMPLES[command].splitlines():
            words = shlex.split(line.split("|")[0].split("   (")[0])
            if "--all" in words or "--status" in words or "--temporal" in words:
                continue  # the Temporal ones run in test_temporal_samples
            result = cli(*words[1:])
            assert result.exit_code == expected.get(command, 0), (line, result.output)


def test_wfrun_alone_prints_an_overview_and_exits_0() -> None:
    result = cli()
    assert result.exit_code == 0
    for expected in ("start TARGET", "resume RUN_ID", "WFRUN_HOME", "--help"):
        assert expected in result.stdout


def test_version_prints_the_version() -> None:
    from wfrun import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"wfrun {__version__}"
