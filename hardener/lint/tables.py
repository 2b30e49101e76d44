"""What the lookup tables named in main.cf answer for anyone: the analysis lint needs of them.

Lint asks one question of an access table: is there an entry an untrusted client can make match
(a catch-all, or a key the client chooses itself such as its sender address) and what action does
it give? The reading is hardener.postfix.tables' (the project's one table reader: source text as
postmap reads it, never the compiled .db); this module only finds the file (a path that does not
exist is looked for beside main.cf, for a rendered configuration directory), marks catch-all
entries and keeps line numbers for evidence. Types that need a server (ldap, mysql, ...) are
reported as not read.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from hardener.errors import ConfigError
from hardener.postfix.tables import (INDEXED_TYPES, RULE_TYPES, TableLine, parse_spec, read_inline,
                                     read_postmap_lines, read_rule_lines)

FILE_TYPES = INDEXED_TYPES
PATTERN_TYPES = ("regexp", "pcre")

# Inputs an attacker may present: a foreign address, domain, IP and host name.
_PROBES = ("attacker@evil.example", "evil.example", "192.0.2.66", "mail.evil.example", "x")


@dataclass(frozen=True)
class TableEntry:
    """One key/value of a table (a pattern for regexp/pcre, a network for cidr)."""

    key: str
    value: str
    line: int | None
    catch_all: bool     # the entry matches every input


@dataclass(frozen=True)
class Table:
    """What lint could read of one table reference such as `hash:/etc/postfix/access`."""

    ref: str
    kind: str
    entries: tuple[TableEntry, ...]
    readable: bool
    why_unreadable: str = ""
    source: str = ""    # the file read, if any


def read_table(ref: str, base_dir: Path | None = None) -> Table:
    """Read table `ref` as far as lint can; `base_dir` is tried for files that do not exist.

    Never raises for a table: what cannot be read is a Table with readable=False and the reason.
    """
    spec = parse_spec(ref)
    kind = spec.type
    if kind == "static":
        value = spec.name[1:-1].strip() if spec.name.startswith("{") and spec.name.endswith("}") else spec.name
        return Table(ref, kind, (TableEntry("*", value, None, True),), True)
    try:
        if kind == "inline":
            entries = [TableEntry(k, v, None, False) for k, v in read_inline(spec.name, ref).items()]
            return Table(ref, kind, tuple(entries), True)
        if kind not in FILE_TYPES + RULE_TYPES:
            return Table(ref, kind or "?", (), False, f"{kind or 'untyped'} tables are not read by lint")
        path = _existing(Path(spec.name), base_dir)
        if path is None:
            return Table(ref, kind, (), False, f"{spec.name}: no such file")
        if kind in RULE_TYPES:
            entries = _rule_entries(kind, read_rule_lines(path, strict=False))
        else:
            entries = [TableEntry(e.key, e.value, e.line, False) for e in _first_of_each_key(
                read_postmap_lines(path, strict=False))]
    except ConfigError as err:
        return Table(ref, kind, (), False, err.one_line())
    return Table(ref, kind, tuple(entries), True, source=str(path))


def _existing(path: Path, base_dir: Path | None) -> Path | None:
    if path.is_file():
        return path
    if base_dir is not None and (base_dir / path.name).is_file():
        return base_dir / path.name
    return None


def _first_of_each_key(lines: list[TableLine]) -> list[TableLine]:
    """postmap keeps the first of duplicate keys (and warns): so does the analysis."""
    seen: set[str] = set()
    out = []
    for entry in lines:
        if entry.key not in seen:
            seen.add(entry.key)
            out.append(entry)
    return out


def _rule_entries(kind: str, lines: list[TableLine]) -> list[TableEntry]:
    """cidr rules (catch-all: prefix length 0) or regexp/pcre rules (catch-all: matches every probe);
    regexp lines that are not a pattern (if/endif) are left out."""
    entries = []
    for rule in lines:
        if kind == "cidr":
            entries.append(TableEntry(rule.key, rule.value, rule.line, _whole_internet(rule.key)))
            continue
        parsed = _split_pattern(rule.key)
        if parsed is not None:
            pattern, flags, negate = parsed
            entries.append(TableEntry(rule.key, rule.value, rule.line,
                                      _matches_everything(pattern, flags, negate)))
    return entries


def _whole_internet(key: str) -> bool:
    try:
        return ipaddress.ip_network(key.strip("[]").replace("]/", "/"), strict=False).prefixlen == 0
    except ValueError:
        return False


def _split_pattern(text: str) -> tuple[str, str, bool] | None:
    """'!/body/flags' -> ('body', 'flags', True); None when `text` is not a delimited pattern."""
    negate = text.startswith("!")
    body = text[1:] if negate else text
    if len(body) < 2 or body[0] not in "/%":
        return None
    close = body.find(body[0], 1)
    if close < 0:
        return None
    return body[1:close], body[close + 1:], negate


def _matches_everything(pattern: str, flags: str, negate: bool) -> bool:
    """True when the pattern (Python's reading of it) matches every probe input."""
    try:
        compiled = re.compile(pattern, re.IGNORECASE)  # case hardly matters for a catch-all
    except re.error:
        return False
    hits = [bool(compiled.search(probe)) != negate for probe in _PROBES]
    return all(hits)


_PERMIT_ACTIONS = ("ok", "relay", "permit")


def is_permit_action(value: str) -> bool:
    """True for access-table results that accept the request (OK, RELAY, PERMIT, or all digits)."""
    word = value.strip().split(maxsplit=1)[0].lower() if value.strip() else ""
    return word in _PERMIT_ACTIONS or word.isdigit()


def is_reject_action(value: str) -> bool:
    """True for results that refuse the request (REJECT, DEFER, 4xx/5xx text)."""
    word = value.strip().split(maxsplit=1)[0].lower() if value.strip() else ""
    return word in ("reject", "defer", "defer_if_permit") or bool(re.match(r"^[45]\d\d$", word))
