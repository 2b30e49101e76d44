"""`hardener render`: command-line layer (parses arguments, calls the library)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hardener.profiles import DEFAULT_PROFILE, load_profile, resolve
from hardener.render import render_to


def register(app: typer.Typer) -> None:
    """Add the render command(s) to the main app."""

    @app.command("render")
    def render(
        profile: str = typer.Argument(DEFAULT_PROFILE, metavar="PROFILE",
                                      help="Built-in profile name or profile YAML path."),
        out: Path = typer.Option(..., "--out", metavar="DIR",
                                 help="Directory to write main.cf, master.cf, ... into."),
        vars_file: Optional[Path] = typer.Option(None, "--vars", metavar="FILE",
                                                 help="YAML file of key: value overrides."),
        assignments: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                               help="Override one key (repeatable; wins over --vars)."),
    ) -> None:
        """Render a profile into Postfix-syntax files (all files or none; same input, same bytes)."""
        settings = resolve(load_profile(profile), vars_file, assignments)
        for path in render_to(settings, out):
            typer.echo(f"wrote {path}")
