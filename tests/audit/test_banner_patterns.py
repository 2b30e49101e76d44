"""banner-leak patterns against greetings real servers send (and names that leak nothing)."""

from __future__ import annotations

import pytest

from hardener.audit.checks.banner import _without_host, leaks
from hardener.audit.probe import parse_reply_lines
from hardener.controls.disclosure import scrub


@pytest.mark.parametrize("greeting, labels", [
    ("220 mx.example.com ESMTP Postfix (Debian/GNU)", {"Postfix", "Debian"}),
    ("220 mx.example.com ESMTP Postfix 3.7.11 (Ubuntu)", {"Postfix", "Ubuntu"}),
    ("220 mx.example.com ESMTP Exim 4.96 Mon, 25 Nov 2026 17:00:00 +0000", {"Exim"}),
    ("220 mx.example.com ESMTP Sendmail 8.15.2/8.15.2/Debian-22; Mon, 25 Nov 2026",
     {"Sendmail", "Debian"}),
    ("220 mx.example.com ESMTP Sendmail 8.16.1/8.16.1; FreeBSD", {"Sendmail", "FreeBSD"}),
    ("220 mx.example.com Microsoft ESMTP MAIL Service ready at Mon, 25 Nov 2026",
     {"Microsoft Exchange"}),
    ("220 mx.example.com ESMTP OpenSMTPD", {"OpenSMTPD"}),
    ("220 mx.example.com ESMTP Haraka/3.0.2 ready", {"Haraka"}),
    ("220 mx.example.com ESMTP netqmail 1.06", {"qmail"}),
    ("220 mx.example.com Zimbra ESMTP ready", {"Zimbra"}),
    ("220 mx.example.com Python SMTP 1.4.6", {"aiosmtpd"}),
    ("220 mx.example.com ESMTP hardener 0.1.0", {"hardener"}),
    ("220 mx.example.com ESMTP Postfix (CentOS)", {"Postfix", "CentOS"}),
    ("220 mx.example.com ESMTP Sendmail 8.14.7/8.14.7 Red Hat", {"Sendmail", "Red Hat"}),
])
def test_leaking_greetings(greeting: str, labels: set[str]) -> None:
    text = _without_host(parse_reply_lines([greeting]))
    assert {label for label, _ in leaks(text)} == labels


@pytest.mark.parametrize("lines", [
    ["220 mx.example.com ESMTP"],
    ["220 postfix.example.com ESMTP"],            # the host name is not scanned
    ["220 exim-gw.example.com ESMTP ready"],
    ["250-mx.example.com Hello audit.hardener.invalid [127.0.0.1]", "250-PIPELINING",
     "250-SIZE 10240000", "250 HELP"],            # our own EHLO name echoed back
])
def test_quiet_replies(lines: list[str]) -> None:
    text = scrub(_without_host(parse_reply_lines(lines)), ("audit.hardener.invalid",))
    assert leaks(text) == []
