"""MAIL FROM / RCPT TO argument parsing into Postfix's internal (unquoted) address form.

`<"user@foreign"@host>` becomes `user@foreign@host` and `<@a,@b:user@c>` becomes `user@c`, as
Postfix's smtpd internalizes an address before trivial-rewrite sees it (address_form.internalize
does the address itself). Parameters after the address (SIZE=, BODY=, NOTIFY=, ORCPT=) are returned
as a dict. When parsing fails, `path_error_reply()` gives the reply Postfix's smtpd sends for it.

SECURITY: input is an untrusted command line. Rejects (returns None) control characters,
unbalanced quotes or brackets, specials outside quotes, bad domains, undecodable bytes and
addresses longer than MAX_ADDRESS octets; never raises on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardener.mta.address_form import (
    MAX_ADDRESS,
    AddressError,
    BadUtf8Error,
    internalize,
)

__all__ = ["MAX_ADDRESS", "ParsedArg", "parse_path_arg", "path_error_reply", "quote_for_reply"]

_SYNTAX = {"FROM:": "501 5.5.4 Syntax: MAIL FROM:<address>",
           "TO:": "501 5.5.4 Syntax: RCPT TO:<address>"}
_BAD_ADDRESS = {"FROM:": "501 5.1.7 Bad sender address syntax",
                "TO:": "501 5.1.3 Bad recipient address syntax"}
_BAD_UTF8 = "500 5.5.2 Error: bad UTF-8 syntax"


@dataclass(frozen=True)
class ParsedArg:
    """An address in internal form plus its ESMTP parameters (names upper-cased)."""

    address: str
    params: dict[str, str | None]


class _PathError(Exception):
    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def _unquoted_index(arg: str, start: int, stop: str) -> int:
    """Index of the first `stop` at or after `start` outside quotes and backslash escapes, or -1."""
    i, quoted = start, False
    while i < len(arg):
        c = arg[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == stop and not quoted:
            return i
        i += 1
    return -1


def _split_angle(arg: str) -> tuple[str, str] | None:
    """(text inside <...>, rest) honouring quotes and backslashes; None if unbalanced."""
    end = _unquoted_index(arg, 1, ">")
    return None if end < 0 else (arg[1:end], arg[end + 1:])


def _split_bare(arg: str) -> tuple[str, str]:
    """(address, rest) for an address without <> (strict_rfc821_envelopes = no): up to the first
    space outside quotes."""
    end = _unquoted_index(arg, 0, " ")
    return (arg, "") if end < 0 else (arg[:end], arg[end:])


def _parse(arg: str, keyword: str) -> ParsedArg:
    syntax = _SYNTAX.get(keyword, "501 5.5.4 Syntax error")
    bad = _BAD_ADDRESS.get(keyword, "501 5.5.4 Syntax error")
    if not arg or arg[: len(keyword)].upper() != keyword:
        raise _PathError(syntax)
    rest = arg[len(keyword):].lstrip(" ")
    if not rest:
        raise _PathError(syntax)
    if rest.startswith("<"):
        split = _split_angle(rest)
        if split is None:
            raise _PathError(bad)
        external, params_text = split
        if params_text and not params_text.startswith(" "):
            raise _PathError(bad)
    else:
        external, params_text = _split_bare(rest)
        if "<" in external or ">" in external:
            raise _PathError(bad)
    try:
        address = internalize(external)
    except BadUtf8Error:
        raise _PathError(_BAD_UTF8) from None
    except AddressError:
        raise _PathError(bad) from None
    if any(ord(c) < 32 or ord(c) == 127 for c in params_text):
        raise _PathError(syntax)
    params: dict[str, str | None] = {}
    for token in params_text.split():
        name, eq, value = token.partition("=")
        if not name.replace("-", "").isalnum() or not name.isascii():
            raise _PathError(syntax)
        params[name.upper()] = value if eq else None
    return ParsedArg(address, params)


def parse_path_arg(arg: str, keyword: str) -> ParsedArg | None:
    """Parse 'FROM:<addr> PARAMS' (keyword 'FROM:') or 'TO:<addr> PARAMS'; None on bad syntax."""
    try:
        return _parse(arg, keyword)
    except _PathError:
        return None


def path_error_reply(arg: str, keyword: str) -> str:
    """The reply for an argument parse_path_arg refused, worded as Postfix's smtpd words it:
    `501 5.1.3 Bad recipient address syntax`, `501 5.1.7 Bad sender address syntax`,
    `500 5.5.2 Error: bad UTF-8 syntax`, or the command syntax reply."""
    try:
        _parse(arg, keyword)
    except _PathError as exc:
        return exc.reply
    return _SYNTAX.get(keyword, "501 5.5.4 Syntax error")


def quote_for_reply(address: str) -> str:
    """An internal-form address made printable for a reply (Postfix shows the unquoted form)."""
    return "".join(c if 32 < ord(c) < 127 else "?" for c in address) if address else ""
