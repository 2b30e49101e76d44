"""Option definitions shared by every reporting command: --format, --output, --fail-on, and the
--trusted networks parser used by lint and audit.

Use them as parameter annotations in a typer command:

    def lint(path: Path, fmt: FormatOption = "table", output: OutputOption = None,
             fail_on: FailOnOption = "high") -> None:
        ...
        raise typer.Exit(emit_report(report, fmt, output, fail_on))

Give --fail-on's default as the label ("high"), not Severity.HIGH, so --help shows "[default: high]";
the parser turns it into a Severity either way. A bad value raises hardener.errors.InputError from
the option's parser, which the CLI entry point prints as one line ('hardener: error: --format: ...')
with exit code 2, before the command runs. `--output -` means standard output.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import typer

from hardener.controls import Severity
from hardener.errors import InputError
from hardener.report.output import FORMATS, check_output_path

SEVERITY_LABELS = tuple(s.label for s in Severity)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_format(value: Any, allowed: tuple[str, ...] = FORMATS, option: str = "--format") -> str:
    """The format name `value`, lowercased; InputError naming the allowed formats otherwise."""
    text = str(value).strip().lower()
    if text not in allowed:
        raise InputError(f"unknown format {str(value)!r} (one of: {', '.join(allowed)})", field=option)
    return text


def parse_severity(value: Any, option: str = "--fail-on") -> Severity:
    """A Severity from its name (info, low, medium, high, critical); InputError otherwise."""
    if isinstance(value, Severity):
        return value
    try:
        return Severity.parse(str(value))
    except ValueError as err:
        raise InputError(str(err), field=option) from None


def parse_network(value: str, option: str = "--trusted") -> Network:
    """A network ADDRESS/LENGTH or a single address, IPv6 also in Postfix's [addr]/len form.

    Host bits must be clear, as Postfix requires in mynetworks ('127.0.0.1/8' is refused with a hint
    at 127.0.0.0/8). InputError, one line naming the option and the value, otherwise.
    """
    text = value.strip()
    spec = text.replace("]/", "/").strip("[]")
    try:
        return ipaddress.ip_network(spec, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(spec, strict=False)
        except ValueError:
            raise InputError(f"{value!r} is not a network (expected ADDRESS/LENGTH, e.g. "
                             f"10.1.2.0/24, or one address)", field=option) from None
        raise InputError(f"{value!r} is not a network: host bits are set (did you mean {loose}?)",
                         field=option) from None


def parse_trusted(values: list[str] | None, option: str = "--trusted") -> tuple[Network, ...]:
    """Every --trusted value as a network (see parse_network), duplicates dropped, order kept."""
    return tuple(dict.fromkeys(parse_network(v, option) for v in values or []))


def parse_output(value: Any, option: str = "--output") -> Path | None:
    """The --output path, checked early so a long audit does not end in an unwritable file."""
    if value is None or str(value) in ("", "-"):
        return None  # '-' means standard output, as usual
    path = Path(value)
    check_output_path(path, option)
    return path


def format_option(allowed: tuple[str, ...] = FORMATS, help_text: str | None = None) -> Any:
    """An Annotated --format option accepting only `allowed` (e.g. ("table", "json", "markdown"))."""
    return Annotated[str, typer.Option(
        "--format",
        parser=lambda v: parse_format(v, allowed),
        metavar="FORMAT",
        help=help_text or f"Output format: {', '.join(allowed)}.",
        show_default=True,
    )]


FormatOption = format_option(
    FORMATS, "Report format: table (coloured on a terminal, plain text otherwise), json, sarif "
             "(GitHub code scanning), junit (CI test reports), markdown.")

OutputOption = Annotated[Path | None, typer.Option(
    "--output",
    parser=parse_output,
    metavar="FILE",
    help="Write the report to FILE (replaced atomically) instead of standard output; '-' is "
         "standard output.",
)]

FailOnOption = Annotated[Severity, typer.Option(
    "--fail-on",
    parser=parse_severity,
    metavar="SEVERITY",
    help="Exit with status 1 when a finding is at or above this severity: info, low, medium, "
         "high, critical.",
    show_default=True,
)]
