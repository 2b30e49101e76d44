"""The `hardener` command: a thin typer layer that parses arguments and calls the library.

Each command group lives in its own module, `NAME_cmd.py`, holding `app`; they are joined here with
add_typer (see hardener/cli/common.py for the conventions every command follows). Errors from the
library (hardener.errors.HardenerError) become one line on stderr and the exit code of DESIGN.md;
nothing here prints a traceback for bad input, and no library's warning reaches the terminal.
"""

from __future__ import annotations

import sys
import warnings

import typer

from hardener import __version__
from hardener.cli import (audit_cmd, controls_cmd, lint_cmd, mta_cmd, profiles_cmd, render_cmd,
                          sendmail_cmd)
from hardener.cli.common import command_app
from hardener.errors import EXIT_USAGE, HardenerError

app = command_app("Harden, deploy and audit secure SMTP gateways.", group=True)
app.add_typer(render_cmd.app)
app.add_typer(lint_cmd.app)
app.add_typer(audit_cmd.app)
app.add_typer(sendmail_cmd.app)
app.add_typer(controls_cmd.app, name="controls")
app.add_typer(profiles_cmd.app, name="profiles")
app.add_typer(mta_cmd.app, name="mta")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hardener {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Harden, deploy and audit secure SMTP gateways."""


def quiet_library_warnings() -> None:
    """Keep warnings that libraries raise (deprecations in cryptography, paramiko, ...) off a
    user's terminal: they are for hardener's developers, who see them in the test suite. An
    explicit -W option or $PYTHONWARNINGS still wins."""
    if not sys.warnoptions:
        warnings.simplefilter("ignore")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    quiet_library_warnings()
    try:
        result = app(args=argv, standalone_mode=False)
    except HardenerError as err:
        print(f"hardener: error: {err.one_line()}", file=sys.stderr)
        return err.exit_code
    except typer.Exit as exit_:
        return exit_.exit_code
    except typer.Abort:
        print("hardener: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # click's usage errors (typer may vendor click, so match by behaviour, not by class)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            code = exc.exit_code
            return code if isinstance(code, int) and code != 1 else EXIT_USAGE
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
