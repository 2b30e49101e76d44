"""`hardener profiles list|show NAME`: command-line layer (parses arguments, calls the library)."""

from __future__ import annotations

import textwrap

import typer

from hardener.cli.common import command_app
from hardener.profiles import KEYS, builtin_names, load_profile
from hardener.profiles.values import Value


app = command_app("List the built-in profiles and the keys they set.", group=True)


def _show_value(value: Value | None) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        return " ".join(value) or "(empty)"
    return value or "(empty)"


@app.command("list")
def list_profiles() -> None:
    """Built-in profiles, one per line: name and what it is for."""
    for name in builtin_names():
        typer.echo(f"{name:<16} {load_profile(name).description}")


@app.command("show")
def show(name: str = typer.Argument(..., metavar="NAME",
                                    help="Built-in profile name or profile YAML path.")) -> None:
    """Every key with its type, the profile's value (or the default) and its meaning."""
    profile = load_profile(name)
    typer.echo(f"profile: {profile.name}")
    typer.echo(f"description: {profile.description}")
    if len(profile.chain) > 1:
        typer.echo(f"extends: {' -> '.join(profile.chain)}")
    typer.echo(f"required: {', '.join(profile.required) or '(none)'}")
    for param, reason in sorted(profile.deviations.items()):
        typer.echo(f"deviation {param}: {reason}")
    typer.echo("")
    rows = []
    for spec in KEYS:
        if spec.name in profile.settings:
            value = _show_value(profile.settings[spec.name])
        elif spec.name in profile.required:
            value = "(required)"
        else:
            value = spec.default_text()
        origin = "" if spec.postfix else " [hardener's own key]"
        rows.append((spec.name, spec.type, value, spec.meaning + origin))
    typer.echo("keys (NAME  TYPE  = VALUE in this profile, or the default):")
    for name, type_, value, meaning in rows:
        typer.echo(f"  {name}  {type_}  = {value}")
        for line in textwrap.wrap(meaning, width=94):
            typer.echo(f"      {line}")
