"""`hardener lint PATH`: static checks of a main.cf (and master.cf beside it) against the catalog."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from hardener.cli.common import FailOnOption, FormatOption, OutputOption
from hardener.controls import Severity
from hardener.errors import InputError
from hardener.lint.base import Network
from hardener.report.model import Report
from hardener.report.output import emit_report


def parse_trusted(values: list[str] | None) -> tuple[Network, ...]:
    """--trusted CIDR values as networks; InputError naming the bad value (exit 2)."""
    networks = []
    for value in values or []:
        try:
            networks.append(ipaddress.ip_network(value.strip().strip("[]").replace("]/", "/"),
                                                 strict=False))
        except ValueError:
            raise InputError(f"not a network: {value!r} (expected ADDRESS/LENGTH, e.g. 10.1.2.0/24)",
                             field="--trusted") from None
    return tuple(networks)


def lint(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A main.cf, or a directory holding "
                                         "main.cf (and master.cf if present).")],
    fmt: FormatOption = "table",
    output: OutputOption = None,
    fail_on: FailOnOption = Severity.HIGH,
    trusted: Annotated[list[str] | None, typer.Option(
        "--trusted", metavar="CIDR",
        help="A network allowed to relay; mynetworks entries outside every --trusted network are "
             "reported as too broad. Repeatable.")] = None,
) -> None:
    """Check a Postfix-syntax configuration against the control catalog (config vantage)."""
    from hardener.lint.runner import lint_path

    result = lint_path(path, trusted=parse_trusted(trusted))
    report = Report(targets=[result], command="lint")
    raise typer.Exit(emit_report(report, fmt, output, fail_on))


def register(app: typer.Typer) -> None:
    """Add the lint command to the main app."""
    app.command("lint")(lint)
