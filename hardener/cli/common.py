"""The command line's shared parts: how a command module builds its typer app, and the options
that mean the same thing in every command.

Conventions (every command follows them; tests/cli/test_help.py checks):
- One module per command group, `hardener/cli/NAME_cmd.py`, holding `app = command_app(...)` with
  its commands; hardener/cli/__init__.py joins them with add_typer (no name: a single command such
  as `lint`; a name: a group such as `mta`). Commands parse arguments and call the library.
- `--config DIR` (ConfigDirOption): the directory holding main.cf and master.cf, default
  $HARDENER_CONFIG, else /etc/hardener, for every `mta` and `mta queue` command. `sendmail` keeps
  sendmail(1)'s flags: -C DIR, else $MAIL_CONFIG, then the same default.
- `--out DIR` (OutDirOption): a directory a command writes files into (render).
  `--output FILE` (OutputOption): the file a report goes to ('-' is standard output).
- `--format`, `--fail-on`: the same names, values and defaults wherever a report is printed.
- Help is plain text: a flag shows no value placeholder, every option names its value (FILE, DIR,
  N, ...) with a metavar.

Use the options as parameter annotations in a typer command:

    @app.command("lint")
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

from pathlib import Path
from typing import Annotated, Any

import typer

from hardener.controls import Severity
from hardener.errors import InputError
from hardener.mta.config.config_dir import CONFIG_ENV, DEFAULT_CONFIG_DIR
from hardener.report.output import FORMATS, check_output_path

SEVERITY_LABELS = tuple(s.label for s in Severity)


def command_app(help: str | None = None, *, group: bool = False) -> typer.Typer:
    """The typer app of one command module. `group`: a command group (`mta`, `profiles`), which
    prints its help when called without a subcommand."""
    return typer.Typer(help=help, no_args_is_help=group, add_completion=False,
                       rich_markup_mode=None, pretty_exceptions_enable=False)


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

ConfigDirOption = Annotated[Path, typer.Option(
    "--config",
    metavar="DIR",
    envvar=CONFIG_ENV,
    help="Directory holding main.cf and master.cf.",
    show_default=True,
    show_envvar=True,
)]
CONFIG_DEFAULT = DEFAULT_CONFIG_DIR   # give it as the default: `config: ConfigDirOption = CONFIG_DEFAULT`

OutDirOption = Annotated[Path, typer.Option(
    "--out",
    metavar="DIR",
    help="Directory to write the files into (created if missing).",
    show_default=False,
)]
