"""The Jinja2 environment for Postfix-syntax files: strict, no HTML escaping, no injection.

StrictUndefined makes a misspelt variable an error instead of an empty string. Values were validated
when the profile was loaded; `finalize` checks every printed value again, so a line break can never
reach a rendered file through a variable (defence in depth, and it covers template-computed values).
"""

from __future__ import annotations

from collections.abc import Iterable

import jinja2

from hardener.controls.catalog import by_id
from hardener.resources import templates_dir

# A helper that has nothing to say prints this; the renderer drops lines holding only it, so the
# template needs no {% if %} around every optional comment.
OMIT = "\x1eomit\x1e"


class Comment(str):
    """Comment lines built by a helper (each line starts with '#'); may span lines."""


class RenderError(Exception):
    """A template or a value that cannot be rendered safely (a bug, not bad user input)."""


def _finalize(value: object) -> object:
    if isinstance(value, Comment):
        if not all(line.startswith("#") for line in value.split("\n")):
            raise RenderError(f"comment helper produced a non-comment line: {value!r}")
        return value
    if isinstance(value, str) and value != OMIT:
        if any(ch in value for ch in "\n\r\0"):
            raise RenderError(f"refusing to render a value with a line break or NUL: {value!r}")
    return value


def _words(value: Iterable[str] | str) -> str:
    return value if isinstance(value, str) else " ".join(value)


def _commas(value: Iterable[str] | str) -> str:
    return value if isinstance(value, str) else ", ".join(value)


def control_comment(*ids: str, note: str = "") -> Comment:
    """'# HRD-X-001 slug: title' for each id (KeyError for an unknown id), plus an optional note."""
    lines = []
    for control_id in ids:
        control = by_id(control_id)
        lines.append(f"# {control.id} {control.slug} -- against: {control.title}.")
    if note:
        lines.append(f"#   {note}")
    return Comment("\n".join(lines))


def wrap_comment(text: str, first: str, width: int = 98) -> Comment:
    """`first` + text as '#' comment lines of at most `width` characters."""
    import textwrap

    lines = textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent="#   ",
                          break_long_words=False, break_on_hyphens=False)
    return Comment("\n".join(lines))


def control_ids(*ids: str) -> str:
    """'HRD-A-001 slug-a, HRD-B-002 slug-b' (ids checked against the catalog)."""
    return ", ".join(f"{by_id(i).id} {by_id(i).slug}" for i in ids)


def make_environment() -> jinja2.Environment:
    """The environment over the shipped templates/ directory."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    env.filters["words"] = _words
    env.filters["commas"] = _commas
    env.globals["control"] = control_comment
    env.globals["control_ids"] = control_ids
    return env


def strip_omitted(text: str) -> str:
    """Drop the lines that hold only OMIT and trailing blanks; fail if OMIT is left elsewhere."""
    lines = [line.rstrip(" \t") for line in text.split("\n") if line.strip(" \t") != OMIT]
    out = "\n".join(lines)
    if OMIT in out:
        raise RenderError("an omitted helper was used inside a line")
    return out
