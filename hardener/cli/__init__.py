"""The `hardener` command: a thin typer layer that parses arguments and calls the library.

Each command group lives in its own module with a `register(app)` function. Errors from the library
(hardener.errors.HardenerError) become one line on stderr and the exit code of DESIGN.md; nothing
here prints a traceback for bad input.
"""

from __future__ import annotations

import sys

import typer

from hardener import __version__
from hardener.errors import EXIT_USAGE, HardenerError

app = typer.Typer(
    name="hardener",
    help="Harden, deploy and audit secure SMTP gateways.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_GROUPS = ("controls", "profiles", "render", "lint", "audit", "mta", "sendmail")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hardener {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Harden, deploy and audit secure SMTP gateways."""


def _register_all() -> None:
    import importlib

    for name in _GROUPS:
        module = importlib.import_module(f"hardener.cli.{name}_cmd")
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
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
