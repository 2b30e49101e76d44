"""Read Postfix lookup tables from their source text, as postmap/postalias would build them.

`hash:`, `lmdb:`, `btree:`, `dbm:`, `sdbm:`, `cdb:` and `texthash:` tables are read from the text file
the map is built from (`hash:/etc/postfix/transport` reads /etc/postfix/transport). The postmap
format: `key whitespace value`, keys lowercased, lines whose first non-whitespace character is `#`
ignored, continuation lines (leading whitespace) joined, the first of duplicate keys wins (postmap
warns). `cidr:`, `regexp:` and `pcre:` return their rules (pattern -> result, in order).
`inline:{ key=value, ... }` (3.0+) is read from the spec itself; `proxy:` is looked through.
The aliases(5) format (`name: a, b`) is read by read_aliases(). Errors name the file and line.
The *_lines() variants return every entry in file order with its line number (TableLine), for
callers that point at lines (lint evidence); the dict readers are built on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hardener.errors import ConfigError
from hardener.postfix.maincf import WHITESPACE, read_logical_lines, split_list

INDEXED_TYPES = ("hash", "lmdb", "btree", "dbm", "sdbm", "cdb", "texthash")
RULE_TYPES = ("cidr", "regexp", "pcre")


@dataclass(frozen=True)
class TableSpec:
    """A `type:name` table reference split into its parts (type "" for a plain file)."""

    type: str
    name: str

    @property
    def text(self) -> str:
        return f"{self.type}:{self.name}" if self.type else self.name


@dataclass(frozen=True)
class TableLine:
    """One entry of a table source file, with the line it starts on (for evidence and errors)."""

    key: str
    value: str
    line: int


def parse_spec(spec: str) -> TableSpec:
    """Split 'proxy:hash:/etc/postfix/x' into TableSpec('hash', '/etc/postfix/x')."""
    spec = spec.strip()
    while spec.startswith("proxy:"):
        spec = spec[len("proxy:"):]
    if spec.startswith("/") or ":" not in spec:
        return TableSpec("", spec)
    type_, _, name = spec.partition(":")
    return TableSpec(type_.lower(), name)


def _resolve(name: str, base_dir: str | Path | None) -> Path:
    path = Path(name)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def _read_text(path: Path, spec: str) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ConfigError(f"cannot read table {spec}: {exc.strerror or exc}", file=str(path)) from None


def read_postmap_source(path: Path, *, lowercase: bool = True, strict: bool = True) -> dict[str, str]:
    """The postmap source format: `key whitespace value` per logical line, first key wins."""
    table: dict[str, str] = {}
    for entry in read_postmap_lines(path, lowercase=lowercase, strict=strict):
        table.setdefault(entry.key, entry.value)
    return table


def read_postmap_lines(path: Path, *, lowercase: bool = True, strict: bool = True) -> list[TableLine]:
    """Every entry of a postmap source file in file order, duplicates included, with line numbers.

    Same reading as read_postmap_source(); strict=False skips lines without a value.
    """
    entries: list[TableLine] = []
    text = _read_text(path, str(path))
    for number, line in read_logical_lines(text, str(path), strict=strict):
        stripped = line.strip(WHITESPACE)
        end = stripped.find('"', 1) if stripped.startswith('"') else -1
        if end > 0:   # a quoted key keeps its quotes and may hold whitespace (as postmap)
            parts = [stripped[:end + 1], stripped[end + 1:]]
            parts = [p for p in parts if p.strip(WHITESPACE)]
        else:
            parts = stripped.split(None, 1)
        if len(parts) < 2:
            if strict:
                raise ConfigError(f'expected format: key whitespace value: "{line.strip()}"',
                                  file=str(path), line=number)
            continue
        key, value = parts[0], parts[1].strip(WHITESPACE)
        entries.append(TableLine(key.lower() if lowercase else key, value, number))
    return entries


def read_rules(path: Path, *, strict: bool = True) -> dict[str, str]:
    """cidr/regexp/pcre rules as pattern -> result (in order; the result may be empty)."""
    rules: dict[str, str] = {}
    for entry in _rule_lines(path, strict=strict, skip_unclosed=False):
        rules.setdefault(entry.key, entry.value)
    return rules


def read_rule_lines(path: Path, *, strict: bool = True) -> list[TableLine]:
    """Every cidr/regexp/pcre rule in file order (pattern as written, result, line number).

    strict=False skips what Postfix would skip with a warning, including a regexp without its
    closing delimiter (read_rules raises for that whatever `strict` says).
    """
    return _rule_lines(path, strict=strict, skip_unclosed=not strict)


def _rule_lines(path: Path, *, strict: bool, skip_unclosed: bool) -> list[TableLine]:
    entries: list[TableLine] = []
    text = _read_text(path, str(path))
    for number, line in read_logical_lines(text, str(path), strict=strict):
        stripped = line.strip(WHITESPACE)
        if stripped[0] in "/%" or stripped[:1] == "!" and stripped[1:2] in ("/", "%"):
            # regexp: /pattern/flags result  (the delimiter may be any character after '/')
            delim = stripped[0] if stripped[0] != "!" else stripped[1]
            start = 1 if stripped[0] != "!" else 2
            end = stripped.find(delim, start)
            if end < 0:
                if skip_unclosed:
                    continue
                raise ConfigError(f'missing closing delimiter in "{stripped}"', file=str(path),
                                  line=number)
            while end + 1 < len(stripped) and stripped[end + 1] not in WHITESPACE:
                end += 1
            pattern, result = stripped[:end + 1], stripped[end + 1:].strip(WHITESPACE)
        else:
            parts = stripped.split(None, 1)
            pattern, result = parts[0], (parts[1] if len(parts) > 1 else "")
        entries.append(TableLine(pattern, result, number))
    return entries


def read_inline(body: str, spec: str) -> dict[str, str]:
    """inline:{ key=value, { key = text with spaces }, ... } (Postfix 3.0)."""
    body = body.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ConfigError(f"inline table must be enclosed in {{}}: {spec}", field=spec)
    table: dict[str, str] = {}
    for item in split_list(body[1:-1]):
        if item.startswith("{") and item.endswith("}"):
            item = item[1:-1].strip()
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f'inline table: expected "key=value", got "{item}"', field=spec)
        table.setdefault(key.strip().lower(), value.strip())
    return table


def read_table(spec: str, base_dir: str | Path | None = None, *, strict: bool = True) -> dict[str, str]:
    """The contents of table `spec` (e.g. 'hash:/etc/postfix/transport') as a dict.

    Relative file names are taken relative to `base_dir` when given. Unsupported table types
    (ldap, mysql, ...) raise ConfigError, as do unreadable files and malformed lines.
    """
    parsed = parse_spec(spec)
    if parsed.type == "inline":
        return read_inline(parsed.name, spec)
    if parsed.type == "static":
        return {"*": parsed.name.strip("{} ")}
    if parsed.type == "unix" and parsed.name == "passwd.byname":
        return read_postmap_source_passwd()
    if parsed.type in RULE_TYPES:
        return read_rules(_resolve(parsed.name, base_dir), strict=strict)
    if parsed.type in INDEXED_TYPES or parsed.type == "":
        return read_postmap_source(_resolve(parsed.name, base_dir), strict=strict)
    raise ConfigError(f"table type {parsed.type}: is not supported (hardener reads indexed files, "
                      f"texthash, cidr, regexp, pcre, inline, static and unix:passwd.byname)",
                      field=spec)


def read_postmap_source_passwd() -> dict[str, str]:
    """unix:passwd.byname: user name -> passwd line (what Postfix's local recipient check sees)."""
    table: dict[str, str] = {}
    try:
        lines = Path("/etc/passwd").read_text(errors="replace").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read /etc/passwd: {exc.strerror}", file="/etc/passwd") from None
    for line in lines:
        if line and not line.startswith("#"):
            table.setdefault(line.split(":", 1)[0], line)
    return table


def split_alias_values(value: str) -> list[str]:
    """Split an alias value on commas outside double quotes; whitespace-trimmed, empties dropped."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current).strip(WHITESPACE))
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip(WHITESPACE))
    return [i for i in items if i]


def read_aliases(path: str | Path, *, strict: bool = True) -> dict[str, list[str]]:
    """aliases(5): `name: target, target` (continuations joined), names lowercased, first wins.

    A name may be quoted ("a b": x). A line without the colon is an error (postalias: "need
    name:value pair"); strict=False skips it as postalias does.
    """
    aliases: dict[str, list[str]] = {}
    for entry in read_alias_lines(path, strict=strict):
        aliases.setdefault(entry.key, split_alias_values(entry.value))
    return aliases


def read_alias_lines(path: str | Path, *, strict: bool = True) -> list[TableLine]:
    """Every alias of an aliases(5) file in file order, duplicates included: name (lowercased),
    the text after the colon (split it with split_alias_values) and the line it starts on."""
    path = Path(path)
    text = _read_text(path, str(path))
    entries: list[TableLine] = []
    for number, line in read_logical_lines(text, str(path), strict=strict):
        stripped = line.strip(WHITESPACE)
        if stripped.startswith('"'):
            end = stripped.find('"', 1)
            if end < 0 or not stripped[end + 1:].lstrip(WHITESPACE).startswith(":"):
                if strict:
                    raise ConfigError(f'need name:value pair: "{stripped}"', file=str(path), line=number)
                continue
            name = stripped[1:end]
            value = stripped[end + 1:].lstrip(WHITESPACE)[1:]
        else:
            name, sep, value = stripped.partition(":")
            if not sep or not name.strip(WHITESPACE):
                if strict:
                    raise ConfigError(f'need name:value pair: "{stripped}"', file=str(path), line=number)
                continue
            name = name.strip(WHITESPACE)
        entries.append(TableLine(name.lower(), value, number))
    return entries
