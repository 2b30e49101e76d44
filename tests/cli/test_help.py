"""--help as a mail admin reads it: defaults by name, every option explained, exit statuses said."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from hardener.cli import app

RUNNER = CliRunner()


def _commands(command, path: tuple[str, ...] = ()):
    """Every leaf command of the app with its path of names (typer vendors click: duck-typed)."""
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


def _help(*path: str) -> str:
    result = RUNNER.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


FAIL_ON_COMMANDS = [path for path, cmd in _commands(typer.main.get_command(app))
                    if any("--fail-on" in p.opts for p in cmd.params)]


def test_lint_and_audit_have_fail_on() -> None:
    assert {("lint",), ("audit",)} <= set(FAIL_ON_COMMANDS)


@pytest.mark.parametrize("path", FAIL_ON_COMMANDS, ids=" ".join)
def test_fail_on_default_is_shown_by_name(path: tuple[str, ...]) -> None:
    text = _help(*path)
    assert "[default: high]" in text
    assert "[default: 3]" not in text


@pytest.mark.parametrize("path", [("lint",), ("audit",)], ids=" ".join)
def test_every_option_has_help_and_exit_statuses_are_listed(path: tuple[str, ...]) -> None:
    command = dict(_commands(typer.main.get_command(app)))[path]
    for param in command.params:
        assert getattr(param, "help", None), f"{param.opts} has no help text"
    text = " ".join(_help(*path).split())
    assert "Exit status: 0 nothing at or above --fail-on; 1 findings at or above it; 2 bad input" in text


def test_audit_help_says_what_is_safe_and_how_targets_look() -> None:
    text = " ".join(_help("audit").split())
    assert "no mail is sent unless --intrusive" in text
    assert "host, host:port or [v6addr]:port" in text
    assert "Usage: hardener audit [OPTIONS] [TARGET]..." in text
