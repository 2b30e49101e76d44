"""`hardener sendmail`: command-line layer (parses arguments, calls the library)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the sendmail command(s) to the main app."""
