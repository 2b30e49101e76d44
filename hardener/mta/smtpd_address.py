"""MAIL FROM / RCPT TO argument parsing into Postfix's internal (unquoted) address form.

`<"user@foreign"@host>` becomes `user@foreign@host`, as Postfix's smtpd internalizes it before
trivial-rewrite sees it; source routes (`<@a,@b:user@c>`) are kept for relay_policy to judge.
Parameters after the address (SIZE=, BODY=, NOTIFY=, ORCPT=) are returned as a dict.

SECURITY: input is an untrusted command line. Rejects (returns None) control characters, unbalanced
quotes or brackets, and addresses longer than 512 bytes; never raises on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ADDRESS = 512


@dataclass(frozen=True)
class ParsedArg:
    """An address in internal form plus its ESMTP parameters (names upper-cased)."""

    address: str
    params: dict[str, str | None]


def _split_angle(arg: str) -> tuple[str, str] | None:
    """(text inside <...>, rest) honouring quotes and backslashes; None if unbalanced."""
    i, quoted = 1, False
    while i < len(arg):
        c = arg[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return arg[1:i], arg[i + 1:]
        i += 1
    return None


def internalize(external: str) -> str | None:
    """Remove RFC 5321 quoting: quoted strings lose their quotes, backslash pairs their backslash."""
    out = []
    i, quoted = 0, False
    while i < len(external):
        c = external[i]
        if c == "\\":
            if i + 1 >= len(external):
                return None
            out.append(external[i + 1])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        else:
            out.append(c)
        i += 1
    if quoted:
        return None
    return "".join(out)


def parse_path_arg(arg: str, keyword: str) -> ParsedArg | None:
    """Parse 'FROM:<addr> PARAMS' (keyword 'FROM:') or 'TO:<addr> PARAMS'; None on bad syntax."""
    if not arg or not arg[: len(keyword)].upper() == keyword:
        return None
    rest = arg[len(keyword):].lstrip(" ")
    if any(ord(c) < 32 or ord(c) == 127 for c in rest):
        return None
    if rest.startswith("<"):
        split = _split_angle(rest)
        if split is None:
            return None
        external, params_text = split
        if params_text and not params_text.startswith(" "):
            return None
    else:
        # strict_rfc821_envelopes = no: Postfix also accepts an address without <>
        external, _, params_text = rest.partition(" ")
        if not external or "<" in external or ">" in external:
            return None
    if len(external) > MAX_ADDRESS:
        return None
    address = internalize(external)
    if address is None:
        return None
    params: dict[str, str | None] = {}
    for token in params_text.split():
        name, eq, value = token.partition("=")
        if not name.isalnum() and not name.replace("-", "").isalnum():
            return None
        params[name.upper()] = value if eq else None
    return ParsedArg(address, params)


def quote_for_reply(address: str) -> str:
    """An internal-form address made printable for a reply or a log line."""
    return "".join(c if 32 < ord(c) < 127 else "?" for c in address) if address else ""
