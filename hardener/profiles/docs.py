"""The profile keys as documentation: the key table of docs/render.md.

`python -m hardener.profiles.docs` prints the generated block (table between two marker comments);
`python -m hardener.profiles.docs --update docs/render.md` replaces the block in that page and leaves
the hand-written text around it alone (`make docs` runs it). A test checks the committed page holds
exactly this block, so the table never drifts from hardener/profiles/keys.py and profiles/*.yaml.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hardener.errors import InputError
from hardener.profiles.keys import KEYS, KeySpec
from hardener.profiles.loader import Profile, builtin_names, load_profile
from hardener.profiles.values import Value

BEGIN = ("<!-- BEGIN profile keys: generated from hardener/profiles/keys.py and profiles/*.yaml by "
         "`python -m hardener.profiles.docs --update docs/render.md` (make docs). Do not edit by hand. -->")
END = "<!-- END profile keys -->"


def _cell(text: str) -> str:
    """Plain text for a table cell: '<' must not read as an HTML tag, '|' must not split the cell."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _code(text: str) -> str:
    """A value as inline code in a table cell ('|' still splits a GFM row inside backticks)."""
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`"


def _value_text(value: Value | None) -> str:
    """A value as `hardener profiles show` prints it, as inline code or a plain marker."""
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        return _code(" ".join(value)) if value else "(empty)"
    return _code(value) if value else "(empty)"


def _default_text(spec: KeySpec) -> str:
    return _value_text(spec.default)


def _profile_text(spec: KeySpec, profile: Profile) -> str:
    """This profile's value of `spec`: its own setting, (required), or '·' for the default."""
    if spec.name in profile.settings:
        return _value_text(profile.settings[spec.name])
    if spec.name in profile.required:
        return "**required**"
    return "·"


def keys_table(profiles: Sequence[Profile] | None = None) -> str:
    """The Markdown table: key, type, default, each built-in profile's value, meaning."""
    if profiles is None:
        profiles = [load_profile(name) for name in builtin_names()]
    header = ["Key", "Type", "Default", *(p.name for p in profiles), "Meaning"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for spec in KEYS:
        meaning = _cell(spec.meaning)
        if not spec.postfix:
            meaning += " *(hardener's own key)*"
        row = [f"`{spec.name}`", _cell(spec.type), _default_text(spec),
               *(_profile_text(spec, p) for p in profiles), meaning]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def generated_block() -> str:
    """The block docs/render.md must contain: the markers, a legend and the table."""
    legend = ("In the profile columns, `·` means the profile keeps the default and **required** "
              "means `hardener render` refuses to run until you give the key (`--set` or `--vars`).")
    return f"{BEGIN}\n\n{legend}\n\n{keys_table()}\n{END}\n"


def extract_block(page: str, where: str = "page") -> str:
    """The generated block of `page` (from BEGIN through END and its newline)."""
    start = page.find(BEGIN)
    end = page.find(END, start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        raise InputError("no generated profile-key block (BEGIN/END marker comments) to replace",
                         file=where)
    return page[start:end + len(END)] + "\n"


def replace_block(page: str, where: str = "page") -> str:
    """`page` with its generated block replaced by the current one."""
    old = extract_block(page, where)
    start = page.find(BEGIN)
    return page[:start] + generated_block() + page[start + len(old):]


def update_file(path: Path) -> bool:
    """Rewrite the generated block of `path` in place (atomically); True when the file changed."""
    try:
        page = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror}", file=str(path)) from None
    new = replace_block(page, str(path))
    if new == page:
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(new)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Print the generated block, or with `--update FILE` replace it in FILE (exit 2 on bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args:
            sys.stdout.write(generated_block())
            return 0
        if len(args) == 2 and args[0] == "--update":
            changed = update_file(Path(args[1]))
            print(f"{args[1]}: {'updated' if changed else 'already current'}", file=sys.stderr)
            return 0
        raise InputError("usage: python -m hardener.profiles.docs [--update FILE]", field="arguments")
    except InputError as err:
        print(f"hardener.profiles.docs: error: {err.one_line()}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
