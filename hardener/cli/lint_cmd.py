"""`hardener lint PATH`: static checks of a main.cf (and master.cf beside it) against the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hardener.cli.common import FailOnOption, FormatOption, OutputOption, command_app
from hardener.report.model import Report
from hardener.report.output import emit_report
from hardener.trusted import parse_trusted

app = command_app()

LINT_EPILOG = (
    "Reads the files only: nothing is connected to and no Postfix needs to run. Exit status: 0 "
    "nothing at or above --fail-on; 1 findings at or above it; 2 bad input (missing or unreadable "
    "file, a line Postfix would refuse); 3 a check could not finish (the report says which).")


@app.command("lint", epilog=LINT_EPILOG)
def lint(
    path: Annotated[Path, typer.Argument(
        metavar="PATH", show_default=False,
        help="The main.cf to check, or the directory holding it (e.g. /etc/postfix); master.cf "
             "beside it is checked too.")],
    fmt: FormatOption = "table",
    output: OutputOption = None,
    fail_on: FailOnOption = "high",  # type: ignore[assignment]  (parsed to Severity.HIGH)
    trusted: Annotated[list[str] | None, typer.Option(
        "--trusted", metavar="CIDR",
        help="A network that is meant to relay through this host (repeat for several); "
             "mynetworks entries outside all of them are reported as too broad.")] = None,
) -> None:
    """Check a Postfix main.cf/master.cf against the control catalog, without connecting anywhere."""
    from hardener.lint.runner import lint_path

    result = lint_path(path, trusted=parse_trusted(trusted))
    report = Report(targets=[result], command="lint")
    raise typer.Exit(emit_report(report, fmt, output, fail_on))
