"""Reading Postfix lookup tables named in main.cf, far enough to see what they answer for anyone.

Lint asks one question of an access table: is there an entry an untrusted client can make match
(a catch-all, or a key the client chooses itself such as its sender address) and what action does
it give? Tables are read from their source text (hash:/x reads /x, as postmap does), never from the
compiled .db. Types that need a server (ldap, mysql, proxy, ...) are reported as unknown.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

FILE_TYPES = ("hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash")
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


def split_ref(ref: str) -> tuple[str, str]:
    """('hash', '/etc/aliases') from 'hash:/etc/aliases'; ('', ref) when there is no type."""
    if ":" in ref and not ref.startswith("/"):
        kind, name = ref.split(":", 1)
        return kind.lower(), name
    return "", ref


def read_table(ref: str, base_dir: Path | None = None) -> Table:
    """Read table `ref` as far as lint can; `base_dir` is tried for files that do not exist."""
    kind, name = split_ref(ref)
    if kind == "static":
        value = name[1:-1].strip() if name.startswith("{") and name.endswith("}") else name
        return Table(ref, kind, (TableEntry("*", value, None, True),), True)
    if kind == "inline":
        return Table(ref, kind, tuple(_inline_entries(name)), True)
    if kind in FILE_TYPES + PATTERN_TYPES + ("cidr",):
        path = _existing(Path(name), base_dir)
        if path is None:
            return Table(ref, kind, (), False, f"{name}: no such file")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            return Table(ref, kind, (), False, f"{path}: {err.strerror or err}")
        reader = {"cidr": _cidr_entries, "regexp": _pattern_entries, "pcre": _pattern_entries}
        entries = reader.get(kind, _key_entries)(text)
        return Table(ref, kind, tuple(entries), True, source=str(path))
    return Table(ref, kind or "?", (), False, f"{kind or 'untyped'} tables are not read by lint")


def _existing(path: Path, base_dir: Path | None) -> Path | None:
    if path.is_file():
        return path
    if base_dir is not None and (base_dir / path.name).is_file():
        return base_dir / path.name
    return None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) with comments dropped and continuation lines joined, as postmap reads."""
    out: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        else:
            out.append((number, line.strip()))
    return out


def _key_entries(text: str) -> list[TableEntry]:
    entries = []
    for number, line in _logical_lines(text):
        key, _, value = line.partition(" ") if " " in line else line.partition("\t")
        entries.append(TableEntry(key.rstrip(":"), value.strip(), number, False))
    return entries


def _cidr_entries(text: str) -> list[TableEntry]:
    entries = []
    for number, line in _logical_lines(text):
        key, _, value = re.split(r"(\s+)", line, maxsplit=1) if re.search(r"\s", line) else (line, "", "")
        catch_all = False
        try:
            catch_all = ipaddress.ip_network(key.strip("[]"), strict=False).prefixlen == 0
        except ValueError:
            pass
        entries.append(TableEntry(key, value.strip(), number, catch_all))
    return entries


def _pattern_entries(text: str) -> list[TableEntry]:
    entries = []
    for number, line in _logical_lines(text):
        match = re.match(r"^(!?)/(.*?)/([a-zA-Z]*)\s+(.*)$", line)
        if not match:
            continue
        negate, pattern, flags, value = match.groups()
        entries.append(TableEntry(line.split()[0], value.strip(), number,
                                  _matches_everything(pattern, flags, bool(negate))))
    return entries


def _matches_everything(pattern: str, flags: str, negate: bool) -> bool:
    """True when the pattern (Python's reading of it) matches every probe input."""
    try:
        compiled = re.compile(pattern, re.IGNORECASE)  # case hardly matters for a catch-all
    except re.error:
        return False
    hits = [bool(compiled.search(probe)) != negate for probe in _PROBES]
    return all(hits)


def _inline_entries(name: str) -> list[TableEntry]:
    body = name.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    entries = []
    for item in re.split(r"[,\s]+(?=[^=,\s]+=)", body.strip()):
        key, _, value = item.partition("=")
        if key.strip():
            entries.append(TableEntry(key.strip(" {}"), value.strip(" ,{}"), None, False))
    return entries


_PERMIT_ACTIONS = ("ok", "relay", "permit")


def is_permit_action(value: str) -> bool:
    """True for access-table results that accept the request (OK, RELAY, PERMIT, or all digits)."""
    word = value.strip().split(maxsplit=1)[0].lower() if value.strip() else ""
    return word in _PERMIT_ACTIONS or word.isdigit()


def is_reject_action(value: str) -> bool:
    """True for results that refuse the request (REJECT, DEFER, 4xx/5xx text)."""
    word = value.strip().split(maxsplit=1)[0].lower() if value.strip() else ""
    return word in ("reject", "defer", "defer_if_permit") or bool(re.match(r"^[45]\d\d$", word))
