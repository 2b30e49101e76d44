"""`hardener controls list | show ID_OR_SLUG`: print the control catalog (table, json or markdown)."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

import typer
from rich.console import Console, RenderableType

from hardener.cli.common import command_app, format_option
from hardener.controls import CATALOG, Control, get
from hardener.controls import docs
from hardener.errors import InputError
from hardener.report.output import PLAIN_WIDTH

CONTROL_FORMATS = ("table", "json", "markdown")
ControlsFormat = format_option(CONTROL_FORMATS, "Output format: table (default), json, markdown.")

app = command_app("The control catalog: what hardener checks and how to fix it.", group=True)


@app.command("list")
def list_controls(fmt: ControlsFormat = "table") -> None:
    """List every control: id, check slug, severity, vantage, title."""
    if fmt == "json":
        sys.stdout.write(docs.controls_json(CATALOG))
    elif fmt == "markdown":
        sys.stdout.write(docs.controls_markdown_table(CATALOG))
    else:
        _print(lambda color: docs.controls_table(CATALOG, color=color))


@app.command("show")
def show_control(
    key: str = typer.Argument(..., metavar="ID_OR_SLUG", help="A control id (HRD-RELAY-001) or check slug (open-relay)."),
    fmt: ControlsFormat = "table",
) -> None:
    """Show one control: rationale, remediation, parameters and references."""
    control = lookup(key)
    if fmt == "json":
        sys.stdout.write(docs.control_json(control))
    elif fmt == "markdown":
        sys.stdout.write(docs.control_markdown(control, level=1))
    else:
        _print(lambda color: docs.control_detail(control))


def lookup(key: str) -> Control:
    """The control with this id or slug; InputError (exit 2) naming the key otherwise."""
    try:
        return get(key.strip())
    except KeyError:
        raise InputError(f"no control with id or check {key!r} (see 'hardener controls list')",
                         field="ID_OR_SLUG") from None


def _print(build: Callable[[bool], RenderableType]) -> None:
    """Print build(color) to stdout: coloured on a terminal, plain ASCII without trailing blanks otherwise."""
    tty = sys.stdout.isatty()
    if tty:
        Console(highlight=False, markup=False, emoji=False).print(build(True))
        return
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=False, no_color=True, color_system=None, highlight=False,
            markup=False, emoji=False, width=PLAIN_WIDTH).print(build(False))
    sys.stdout.write("\n".join(line.rstrip() for line in buffer.getvalue().split("\n")))

