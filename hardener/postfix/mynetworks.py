"""mynetworks as Postfix 3.7 reads it (match_list.c, match_ops.c match_hostaddr, cidr_match.c).

Each element (split on whitespace and commas; empty elements vanish) is one of:
- `a.b.c.d` or `[addr]`: that one address;  `net/len` or `[v6net]/len`: a network, whose host bits
  must be zero (Postfix: "non-null host address bits" -> lookup error, so every restriction after
  permit_mynetworks answers 451 4.3.0 to everyone);
- `!element`: negation (first match wins);
- `/file/name`: the patterns in that file (one or more per line, `#` lines skipped);
- `type:table`: the client address is looked up in the table (cidr: tables hold networks; hash-style
  tables match exact addresses only). An IPv6 address without [] also looks like `type:table` and
  makes Postfix fail the lookup.
A `#` element starts an unsupported end-of-line comment: Postfix ignores it and everything after it.
Host names and other text never match (mynetworks compares addresses only). IPv4-mapped IPv6
networks such as [::ffff:127.0.0.0]/104 never match either: Postfix turns such clients into IPv4
(checked over XCLIENT). Next to an entry that trusts the same IPv4 network (Debian's default
main.cf: 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128) such an entry is merely redundant.
When mynetworks is unset, mynetworks_style (host, subnet, class) derives it from this machine.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from hardener.errors import ConfigError
from hardener.postfix.maincf import MainCf, split_list
from hardener.postfix.tables import RULE_TYPES, INDEXED_TYPES, parse_spec, read_postmap_source, read_rules
from hardener.report.model import Location

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FATAL_MARK = "\0fatal\0"     # prefix of classify() reasons for errors that stop smtpd
_ADDR_CHARS = re.compile(r"[0-9a-fA-F./:\[\]]*")


@dataclass(frozen=True)
class NetworkEntry:
    """One network Postfix trusts through mynetworks."""

    network: Network
    text: str                       # the element as written (after $name expansion)
    location: Location | None
    negated: bool = False           # "!net": excluded (first match wins)
    source: str | None = None       # "/file/name" or "cidr:/path" it came from, if any


@dataclass(frozen=True)
class NetworkProblem:
    """An element Postfix rejects, or reads differently from what is written."""

    entry: str
    location: Location | None
    reason: str
    rejected: bool                  # True: Postfix fails the lookup (451 4.3.0) or stops
    fatal: bool = False             # True: smtpd exits at startup, no mail is received at all
    redundant: bool = False         # True: never matches, but what it meant is trusted anyway

    @property
    def message(self) -> str:
        return f"{self.entry!r}: {self.reason}"

    @property
    def file(self) -> str | None:
        return self.location.file if self.location else None

    @property
    def line(self) -> int | None:
        return self.location.line if self.location else None


@dataclass(frozen=True)
class _Element:
    text: str
    location: Location | None
    source: str | None = None


def _mapped_v4(net: Network) -> bool:
    return net.version == 6 and net.network_address.ipv4_mapped is not None and net.prefixlen >= 96


def classify(text: str) -> tuple[Network | None, str | None, bool]:
    """(network, problem, rejected) for one address element (no '!', no table, no file)."""
    if text.startswith("#"):
        return None, ("an end-of-line comment is not supported here: Postfix ignores this and "
                      "every element after it"), False
    bracketed = text.startswith("[")
    body = text
    if bracketed:
        close = text.find("]")
        if close < 0:
            return None, "missing ']' (Postfix: bad net/mask pattern)", True
        inner, rest = text[1:close], text[close + 1:]
        if rest and not rest.startswith("/"):
            return None, f"garbage after \"[{inner}]\" (Postfix: lookup error)", True
        body = inner + rest
    addr, slash, mask = body.partition("/")
    if not _ADDR_CHARS.fullmatch(text):
        return None, ("not an address: mynetworks matches client IP addresses only, never host "
                      "names, so Postfix silently ignores this"), False
    if not slash:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            if ":" in addr or bracketed:
                return None, "not a valid address (Postfix: bad address pattern, lookup error)", True
            return None, "not a valid address: Postfix compares it as text and it never matches", False
        net = ipaddress.ip_network(ip)
    else:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return None, "bad net/mask pattern (not an address before '/'): Postfix fails the lookup", True
        if not mask.isdigit() or int(mask) > ip.max_prefixlen:
            return None, f"bad net/mask pattern (prefix length must be 0-{ip.max_prefixlen})", True
        try:
            net = ipaddress.ip_network(f"{ip}/{int(mask)}")
        except ValueError:
            fixed = ipaddress.ip_network(f"{ip}/{int(mask)}", strict=False)
            shown = f"[{fixed.network_address}]/{fixed.prefixlen}" if ip.version == 6 else str(fixed)
            return None, (f"non-null host address bits: Postfix rejects it and fails the lookup "
                          f"(451 to every client); perhaps you mean {shown}"), True
    if net.version == 6 and not bracketed:
        return net, (FATAL_MARK + "IPv6 without [brackets]: Postfix reads it as a type:table and "
                     "smtpd stops at startup (\"expecting type:name form\"), so no mail is "
                     f"received at all; write [{net.network_address}]/{net.prefixlen}"), True
    if _mapped_v4(net):
        v4 = mapped_equivalent(net)
        return net, (f"IPv4-mapped IPv6 network: never matches, Postfix sees such clients as IPv4, "
                     f"so {v4} is not trusted by it (write {v4})"), False
    return net, None, False


def mapped_equivalent(net: Network) -> ipaddress.IPv4Network:
    """The IPv4 network an IPv4-mapped IPv6 network ([::ffff:a.b.c.d]/96+n) stands for."""
    assert isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None
    return ipaddress.IPv4Network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")


def _redundant_mapped(problem: NetworkProblem, net: Network,
                      entries: list[NetworkEntry]) -> NetworkProblem:
    """A mapped network whose IPv4 form another entry trusts is merely redundant: smtpd turns
    ::ffff:a.b.c.d clients into IPv4 first (Debian's main.cf writes [::ffff:127.0.0.0]/104 next
    to 127.0.0.0/8). Otherwise it stays a problem: what it was meant to trust is not trusted."""
    v4 = mapped_equivalent(net)
    cover = next((e for e in entries if not e.negated and isinstance(e.network, ipaddress.IPv4Network)
                  and v4.subnet_of(e.network)), None)
    if cover is None:
        return problem
    return NetworkProblem(problem.entry, problem.location,
                          f"redundant: never matches (Postfix sees IPv4-mapped clients as IPv4) "
                          f"and {cover.text} already trusts them"
                          + (f" ({v4})" if str(v4) != cover.text else "")
                          + "; harmless, may be removed", rejected=False, redundant=True)


def _elements(cf: MainCf) -> list[_Element]:
    """mynetworks split into elements, each with the line it was written on when known."""
    where = cf.location("mynetworks")
    expanded = split_list(cf.get("mynetworks"))
    raw = cf.raw("mynetworks")
    if raw is None or where is None:
        return [_Element(e, where) for e in expanded]
    # Give each element its own line: expand the written elements one by one, when that reads the same.
    lines = _element_lines(cf, raw, where)
    per_element: list[_Element] = []
    try:
        for text, line in lines:
            for item in split_list(cf.expand(text, field="mynetworks")):
                per_element.append(_Element(item, Location(where.file, line)))
    except ConfigError:   # e.g. ${x?a, b}: only the whole value expands
        per_element = []
    if [e.text for e in per_element] == expanded:
        return per_element
    return [_Element(e, where) for e in expanded]


def _element_lines(cf: MainCf, raw: str, where: Location) -> list[tuple[str, int | None]]:
    """Each written element of mynetworks with the physical line it is on (searched in order)."""
    definition = next((d for d in reversed(cf.definitions) if d.name == "mynetworks"), None)
    physical = list(definition.physical_lines) if definition is not None else []
    if physical:   # search the value only, not "mynetworks =" on the first line
        first_number, first_text = physical[0]
        physical[0] = (first_number, first_text.split("=", 1)[1] if "=" in first_text else "")
    result = []
    row, col = 0, 0
    for text in split_list(raw):
        line = where.line
        for index in range(row, len(physical)):
            found = physical[index][1].find(text, col if index == row else 0)
            if found >= 0:
                row, col, line = index, found + len(text), physical[index][0]
                break
        result.append((text, line))
    return result


def _expand_files(elements: list[_Element], base_dir: Path | None) -> tuple[list[tuple[_Element, bool]], list[NetworkProblem]]:
    """Resolve '!' and /file/name elements into (element, negated) pairs (files read recursively)."""
    out: list[tuple[_Element, bool]] = []
    problems: list[NetworkProblem] = []
    for element in elements:
        text, negated = element.text, False
        while text.startswith("!"):
            text, negated = text[1:], not negated
        if not text:
            problems.append(NetworkProblem(element.text, element.location,
                                           "no pattern after '!' (Postfix stops with a fatal error)", True))
            continue
        if text.startswith("#"):
            problems.append(NetworkProblem(text, element.location, classify(text)[1] or "", False))
            break
        if text.startswith("/"):
            path = Path(text)
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError as exc:
                problems.append(NetworkProblem(text, element.location,
                                               f"cannot read {text} ({exc.strerror}): Postfix fails "
                                               "the lookup", True))
                continue
            for number, line in enumerate(lines, start=1):
                if line.startswith("#"):
                    continue
                inner = [_Element(("!" if negated else "") + item, Location(text, number), text)
                         for item in split_list(line)]
                sub, sub_problems = _expand_files(inner, base_dir)
                out += sub
                problems += sub_problems
            continue
        out.append((_Element(text, element.location, element.source), negated))
    return out, problems


def _table_entries(element: _Element, negated: bool) -> tuple[list[NetworkEntry], list[NetworkProblem]]:
    spec = parse_spec(element.text)
    entries: list[NetworkEntry] = []
    problems: list[NetworkProblem] = []
    try:
        if spec.type in RULE_TYPES:
            if spec.type != "cidr":
                problems.append(NetworkProblem(element.text, element.location,
                                               f"{spec.type}: table patterns are not read by hardener",
                                               False))
                return entries, problems
            table = read_rules(Path(spec.name), strict=False)
        elif spec.type in INDEXED_TYPES:
            table = read_postmap_source(Path(spec.name), strict=False)
        else:
            problems.append(NetworkProblem(element.text, element.location,
                                           f"table type {spec.type}: cannot be read by hardener",
                                           False))
            return entries, problems
    except ConfigError as exc:
        problems.append(NetworkProblem(element.text, element.location,
                                       f"{exc.message}: Postfix fails the lookup", True))
        return entries, problems
    for key in table:
        pattern = key
        inner_negated = negated
        while pattern.startswith("!"):
            pattern, inner_negated = pattern[1:], not inner_negated
        net, problem, rejected = classify(pattern if spec.type == "cidr" or pattern.startswith("[")
                                          or ":" not in pattern else f"[{pattern}]")
        where = Location(spec.name, None)
        if spec.type != "cidr" and net is not None and net.num_addresses > 1:
            problems.append(NetworkProblem(key, where, f"{spec.type}: tables match exact addresses "
                                           "only, so this network never matches (use cidr:)", False))
            continue
        if problem and (spec.type != "cidr" or "IPv6 without" not in problem):
            problems.append(_problem(key, where, problem, rejected))
            if rejected or net is None:
                continue
        if net is not None:
            entries.append(NetworkEntry(net, key, where, inner_negated, element.text))
    return entries, problems


def _read(cf: MainCf) -> tuple[list[NetworkEntry], list[NetworkProblem]]:
    entries: list[NetworkEntry] = []
    problems: list[NetworkProblem] = []
    elements = _elements(cf)
    if cf.is_set("mynetworks"):
        problems += _empty_elements(cf)
    resolved, file_problems = _expand_files(elements, cf.path.parent if cf.path else None)
    problems += file_problems
    mapped: dict[int, Network] = {}    # index in problems -> its IPv4-mapped network
    for element, negated in resolved:
        text = element.text
        if not text.startswith("[") and ":" in text and parse_spec(text).type.isalnum() \
                and not _looks_like_ipv6(text):
            found, table_problems = _table_entries(element, negated)
            entries += found
            problems += table_problems
            continue
        net, problem, rejected = classify(text)
        if problem:
            problems.append(_problem(text, element.location, problem, rejected))
            if net is not None and _mapped_v4(net):
                mapped[len(problems) - 1] = net
        if net is not None and not rejected:
            entries.append(NetworkEntry(net, text, element.location, negated, element.source))
    for index, net in mapped.items():
        problems[index] = _redundant_mapped(problems[index], net, entries)
    return entries, problems


def _problem(entry: str, location: Location | None, reason: str, rejected: bool) -> NetworkProblem:
    fatal = reason.startswith(FATAL_MARK)
    return NetworkProblem(entry, location, reason.removeprefix(FATAL_MARK), rejected, fatal)


def _looks_like_ipv6(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return True
    except ValueError:
        return False


def _empty_elements(cf: MainCf) -> list[NetworkProblem]:
    """Stray commas in the value as written: Postfix skips the empty element silently."""
    where = cf.location("mynetworks")
    definition = next((d for d in reversed(cf.definitions) if d.name == "mynetworks"), None)
    if where is None or definition is None or not definition.physical_lines:
        return []
    chars: list[tuple[str, int]] = []       # non-blank characters of the value, with their line
    for index, (number, text) in enumerate(definition.physical_lines):
        if index == 0:
            text = text.split("=", 1)[1] if "=" in text else ""
        chars += [(ch, number) for ch in text if not ch.isspace()]
    problems = []
    previous = None
    for position, (ch, number) in enumerate(chars):
        if ch == ",":
            if position == 0:
                what = "a leading comma"
            elif previous == ",":
                what = "a doubled comma"
            elif position == len(chars) - 1:
                what = "a trailing comma"
            else:
                what = ""
            if what:
                problems.append(NetworkProblem(",", Location(where.file, number),
                                               f"empty element ({what}): Postfix skips it "
                                               "silently; check that no network is missing", False))
        previous = ch
    return problems


def parse_mynetworks(cf: MainCf) -> list[NetworkEntry]:
    """The networks mynetworks trusts, in order; ConfigError (file:line, entry) for any element
    Postfix would reject. Elements Postfix ignores (host names, comments) are left out."""
    entries, problems = _read(cf)
    for problem in problems:
        if problem.rejected:
            where = problem.location
            raise ConfigError(f"mynetworks element {problem.entry!r}: {problem.reason}",
                              file=where.file if where else cf.filename,
                              line=where.line if where else None, field="mynetworks")
    return entries


def mynetworks_problems(cf: MainCf) -> list[NetworkProblem]:
    """Every element Postfix rejects, reads differently from what is written, or that is merely
    redundant (`redundant`: never matches, harmless), in order; never raises for them."""
    try:
        return _read(cf)[1]
    except ConfigError as exc:
        return [NetworkProblem(cf.raw("mynetworks") or "", cf.location("mynetworks"), exc.message, True)]
