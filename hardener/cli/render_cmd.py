"""`hardener render PROFILE --out DIR`: a profile rendered into Postfix-syntax files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hardener.cli.common import OutDirOption, command_app
from hardener.profiles import DEFAULT_PROFILE, load_profile, resolve
from hardener.render import render_to

app = command_app()


@app.command("render")
def render(
    out: OutDirOption,
    profile: Annotated[str, typer.Argument(
        metavar="PROFILE", help="Built-in profile name or profile YAML path.")] = DEFAULT_PROFILE,
    vars_file: Annotated[Path | None, typer.Option(
        "--vars", metavar="FILE", help="YAML file of key: value overrides.")] = None,
    assignments: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Override one key (repeatable; wins over --vars).")] = None,
) -> None:
    """Render a profile into Postfix-syntax files (all files or none; same input, same bytes)."""
    settings = resolve(load_profile(profile), vars_file, assignments or [])
    for path in render_to(settings, out):
        typer.echo(f"wrote {path}")
