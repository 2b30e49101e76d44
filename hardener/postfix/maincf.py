"""Read a Postfix main.cf exactly as Postfix 3.7 does (readlline + split_nameval + mac_expand).

File format (checked against the real postconf): a logical line starts with non-whitespace; a
physical line that starts with whitespace continues it (joined as written); lines that are empty,
all whitespace, or whose first non-whitespace character is `#` are ignored everywhere, even between
continuation lines. A `#` later in a line is part of the value. `name = value`: whitespace around
`=` and at the end is dropped; the name is everything up to whitespace or `=`. The last definition
wins. Values are expanded on use (`$name`, `${name?x}`, ... see expand.py); unset parameters take
Postfix's default, which may itself be an expression on `compatibility_level`.

Errors: a line without `=` (Postfix: fatal "missing '=' after attribute name") and a continuation
line with nothing before it (Postfix 3.7 only warns and skips it; we raise by default, pass
strict=False to get Postfix's behaviour with the warning in MainCf.warnings) raise ConfigError.

Bounds (hardener's own; Postfix reads a 10 MB line and expands without limit): a logical line of
more than MAX_LINE_LENGTH characters, a config file of more than MAX_FILE_SIZE bytes and a value
whose expansion grows past expand.MAX_RESULT_LENGTH are refused with ConfigError naming file, line
and parameter. MAX_LINE_LENGTH is Postfix's header_size_limit default, its bound on one logical
header line; Postfix's longest default value is under 2,000 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hardener.errors import ConfigError
from hardener.postfix import defaults
from hardener.postfix.expand import ExpandError, ExpansionLimit, expand
from hardener.report.model import Location

WHITESPACE = " \t\r\n\f\v"
LIST_SEPARATORS = ", \t\r\n"
OVERRIDE_FILE = "(-o override)"
MAX_LINE_LENGTH = 102_400       # characters in one logical line (continuations joined)
MAX_FILE_SIZE = 4 << 20         # bytes of main.cf or master.cf


@dataclass(frozen=True)
class Definition:
    """One `name = value` as written (value unexpanded), with where it is."""

    name: str
    value: str
    location: Location
    physical_lines: tuple[tuple[int, str], ...] = ()   # [(line number, text)] of a continued value


def read_logical_lines(text: str, filename: str = "main.cf", *, strict: bool = True,
                       warnings: list[str] | None = None) -> list[tuple[int, str]]:
    """Join continuation lines like Postfix's readlline(): [(first line number, logical line)]."""
    return [(start, joined) for start, joined, _ in
            read_logical_lines_detailed(text, filename, strict=strict, warnings=warnings)]


def read_logical_lines_detailed(text: str, filename: str = "main.cf", *, strict: bool = True,
                                warnings: list[str] | None = None,
                                ) -> list[tuple[int, str, tuple[tuple[int, str], ...]]]:
    """Like read_logical_lines(), plus each logical line's physical lines [(number, text)]."""
    logical: list[tuple[int, str, tuple[tuple[int, str], ...]]] = []
    current: list[tuple[int, str]] | None = None
    length = 0
    orphan = False

    def flush() -> None:
        if current:
            logical.append((current[0][0], "".join(t for _, t in current), tuple(current)))

    def check_length(first: int) -> None:
        if length > MAX_LINE_LENGTH:
            joined = " (with its continuation lines)" if current and len(current) > 1 else ""
            raise ConfigError(f"line longer than {MAX_LINE_LENGTH} characters{joined}: refused",
                              file=filename, line=first)

    for number, line in enumerate(text.split("\n"), start=1):
        body = line.lstrip(WHITESPACE)
        if not body or body[0] == "#":
            continue
        if line[0] in WHITESPACE:
            if current is not None:
                current.append((number, line))
                length += len(line)
                check_length(current[0][0])
                continue
            if orphan:
                continue
            message = f'logical line must not start with whitespace: "{line.strip()[:30]}"'
            if strict:
                raise ConfigError(message + " (a continuation line with nothing before it)",
                                  file=filename, line=number)
            if warnings is not None:
                warnings.append(f"{filename}:{number}: {message}")
            orphan = True
            continue
        flush()
        current, orphan, length = [(number, line)], False, len(line)
        check_length(number)
    flush()
    return logical


def split_name_value(line: str, filename: str, number: int) -> tuple[str, str]:
    """Postfix's split_nameval(): the name up to whitespace or '=', the value trimmed."""
    stripped = line.lstrip(WHITESPACE)
    if not stripped or stripped[0] == "=":
        raise ConfigError(f'missing attribute name: "{line.strip()}"', file=filename, line=number)
    end = 0
    while end < len(stripped) and stripped[end] not in WHITESPACE and stripped[end] != "=":
        end += 1
    name = stripped[:end]
    rest = stripped[end:].lstrip(WHITESPACE)
    if not rest.startswith("="):
        raise ConfigError(f"missing '=' after attribute name: \"{line.strip()}\" "
                          "(expected 'name = value')", file=filename, line=number)
    return name, rest[1:].strip(WHITESPACE)


def split_list(value: str, separators: str = LIST_SEPARATORS) -> list[str]:
    """Split like Postfix's mystrtokq(): on separators, but never inside balanced { }."""
    items: list[str] = []
    token: list[str] = []
    level = 0
    for ch in value:
        if level == 0 and ch in separators:
            if token:
                items.append("".join(token))
                token = []
            continue
        if ch == "{":
            level += 1
        elif ch == "}" and level > 0:
            level -= 1
        token.append(ch)
    if token:
        items.append("".join(token))
    return items


class MainCf:
    """A parsed main.cf: values as written, expanded values with Postfix defaults, locations."""

    def __init__(self, definitions: list[Definition], *, path: Path | None = None,
                 filename: str = "main.cf", overrides: dict[str, str] | None = None,
                 warnings: list[str] | None = None) -> None:
        self.path = path
        self.filename = filename
        self.definitions = list(definitions)
        self.warnings = list(warnings or [])
        self._winners: dict[str, Definition] = {}
        for definition in self.definitions:
            self._winners[definition.name] = definition
        for name, value in (overrides or {}).items():
            self._winners[name] = Definition(name, value, Location(OVERRIDE_FILE))
        self._cache: dict[str, str] = {}

    # -- values as written ------------------------------------------------------------------

    def names(self) -> list[str]:
        """Explicitly set parameter names, in file order (then -o overrides)."""
        return list(self._winners)

    def is_set(self, name: str) -> bool:
        """True when main.cf (or an override) defines `name`."""
        return name in self._winners

    def raw(self, name: str) -> str | None:
        """The value as written (unexpanded), or None when not set."""
        definition = self._winners.get(name)
        return definition.value if definition else None

    def location(self, name: str) -> Location | None:
        """File and line of the definition that wins, or None when not set."""
        definition = self._winners.get(name)
        return definition.location if definition else None

    def definitions_of(self, name: str) -> list[Definition]:
        """Every definition of `name` in the file, in order (earlier ones are overridden)."""
        return [d for d in self.definitions if d.name == name]

    def default(self, name: str) -> str | None:
        """Postfix's default for `name` as `postconf -d` prints it (unexpanded), None if unknown."""
        if name == "config_directory" and self.path is not None:
            return str(self.path.parent)
        if name in defaults.MACHINE_DEPENDENT:
            try:
                return defaults.machine_default(name, self)
            except ValueError as exc:
                raise ConfigError(f"cannot compute the default: {exc}", file=self.filename,
                                  field=name) from None
        return defaults.builtin_default(name)

    def raw_or_default(self, name: str) -> str | None:
        """The value as written, else the default, else None (unknown and unset)."""
        value = self.raw(name)
        return value if value is not None else self.default(name)

    # -- expanded values --------------------------------------------------------------------

    def _lookup(self, name: str, test_only: bool) -> str | None:
        return self.raw_or_default(name)

    def expand(self, text: str, *, field: str | None = None) -> str:
        """Expand `$name` forms in `text` against this configuration (ConfigError if malformed)."""
        try:
            return expand(text, self._lookup)
        except ExpandError as exc:
            where = self.location(field) if field else None
            suffix = "" if isinstance(exc, ExpansionLimit) else \
                " (Postfix stops with 'macro processing error')"
            raise ConfigError(f"{exc}{suffix}",
                              file=where.file if where else self.filename,
                              line=where.line if where else None, field=field) from None

    def get(self, name: str) -> str:
        """The fully expanded value; Postfix's default when unset; "" for unknown unset names.

        Postfix's raw parameters (defaults.RAW_PARAMETERS, e.g. smtpd_reject_footer) come back as
        written: Postfix expands them later, per message.
        """
        if name not in self._cache:
            raw = self.raw_or_default(name)
            if raw is None:
                self._cache[name] = ""
            elif name in defaults.RAW_PARAMETERS:
                self._cache[name] = raw
            else:
                self._cache[name] = self.expand(raw, field=name)
        return self._cache[name]

    def get_list(self, name: str) -> list[str]:
        """The expanded value split on whitespace and commas (braces group), like Postfix lists."""
        return split_list(self.get(name))

    def _bad(self, name: str, kind: str) -> ConfigError:
        where = self.location(name)
        return ConfigError(f"bad {kind} configuration: {name} = {self.get(name)}",
                           file=where.file if where else self.filename,
                           line=where.line if where else None, field=name)

    def get_bool(self, name: str) -> bool:
        """yes/no (any case), as Postfix; anything else is a ConfigError."""
        value = self.get(name).lower()
        if value in ("yes", "no"):
            return value == "yes"
        raise self._bad(name, "boolean")

    def get_int(self, name: str) -> int:
        """A decimal integer, as Postfix's get_mail_conf_int()."""
        value = self.get(name)
        if re.fullmatch(r"[+-]?[0-9]+", value):
            return int(value)
        raise self._bad(name, "numerical")

    def get_size(self, name: str) -> int:
        """A size in bytes (Postfix sizes are plain integers, e.g. message_size_limit)."""
        return self.get_int(name)

    def get_time(self, name: str) -> int:
        """A time in seconds: a number with an optional unit s m h d w (conv_time()).

        A bare number takes the parameter's default unit: the unit of its (expanded) default,
        e.g. days for maximal_queue_lifetime, as Postfix's get_mail_conf_time().
        """
        value = self.get(name)
        match = re.fullmatch(r"\+?([0-9]+)([smhdw]?)", value)
        if not match:
            raise self._bad(name, "time")
        unit = match.group(2) or self._default_time_unit(name)
        seconds = int(match.group(1)) * defaults.TIME_UNITS[unit]
        if seconds > 2**31 - 1:
            raise self._bad(name, "time")
        return seconds

    def _default_time_unit(self, name: str) -> str:
        default = self.default(name)
        if default:
            try:
                expanded = expand(default, self._lookup)
            except ExpandError:
                expanded = default
            letters = [c for c in expanded if c.isalpha()]
            if letters and letters[0] in defaults.TIME_UNITS:
                return letters[0]
        return defaults.default_time_unit(name)

    @property
    def compatibility_level(self) -> str:
        """The effective compatibility_level ("0" when unset, as Postfix 3.7)."""
        return self.get("compatibility_level") or "0"

    def with_overrides(self, overrides: dict[str, str]) -> "MainCf":
        """A copy with `overrides` applied on top (like master.cf -o or postconf -o)."""
        merged = {d.name: d.value for d in self._winners.values()
                  if d.location.file == OVERRIDE_FILE}
        merged.update(overrides)
        return MainCf(self.definitions, path=self.path, filename=self.filename,
                      overrides=merged, warnings=self.warnings)

    def __repr__(self) -> str:
        return f"MainCf({self.filename!r}, {len(self._winners)} parameters set)"


def parse_main_cf(text: str, filename: str = "main.cf", *, strict: bool = True,
                  overrides: dict[str, str] | None = None, path: Path | None = None) -> MainCf:
    """Parse main.cf text; ConfigError with file and line for a line Postfix would not accept."""
    warnings: list[str] = []
    definitions = []
    for number, line, physical in read_logical_lines_detailed(text, filename, strict=strict,
                                                              warnings=warnings):
        name, value = split_name_value(line, filename, number)
        definitions.append(Definition(name, value, Location(filename, number), physical))
    return MainCf(definitions, path=path, filename=filename, overrides=overrides,
                  warnings=warnings)


def load_main_cf(path: str | Path, overrides: dict[str, str] | None = None, *,
                 strict: bool = True) -> MainCf:
    """Read main.cf from a file, or from a directory holding main.cf; overrides act like postconf -o."""
    path, text = read_config_file(path, "main.cf")
    return parse_main_cf(text, str(path), strict=strict, overrides=overrides, path=path.resolve())


def read_config_file(path: str | Path, name: str) -> tuple[Path, str]:
    """(file path, text) of `path`, or of `path/name` when path is a directory; ConfigError naming
    the file when it cannot be read. Bytes that are not UTF-8 survive as surrogate escapes."""
    path = Path(path)
    if path.is_dir():
        path = path / name
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc}", file=str(path)) from None
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError(f"larger than {MAX_FILE_SIZE} bytes: refused", file=str(path))
    return path, data.decode("utf-8", errors="surrogateescape")
