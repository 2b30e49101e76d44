"""The reply rules of vrfy-enabled, expn-enabled, user-enumeration and the STARTTLS-first retry.

Real servers are in tests/test_vantage_agreement.py (Postfix) and test_audit_aiosmtpd.py; these
pin the rules on the replies those servers send.
"""

from __future__ import annotations

import pytest

from hardener.audit.checks.enumeration import answered, tells_apart
from hardener.audit.checks.tls_first import demands_tls
from hardener.audit.probe import parse_reply_lines


def reply(line: str):
    return parse_reply_lines([line])


@pytest.mark.parametrize("line, is_answered", [
    ("252 2.0.0 root", True),                       # Postfix, VRFY on
    ("252 Cannot VRFY user, but will accept message", True),   # aiosmtpd: 252 for everyone
    ("550 5.1.1 <x>: Recipient address rejected: User unknown", True),
    ("554 5.7.1 <x>: Client host rejected: Access denied", True),
    ("502 5.5.1 VRFY command is disabled", False),  # Postfix, disable_vrfy_command = yes
    ("500 5.5.2 Error: command not recognized", False),   # Postfix's EXPN
    ("502 5.5.2 Error: command not recognized", False),   # hardener's EXPN
])
def test_answered_is_anything_but_500_and_502(line: str, is_answered: bool) -> None:
    assert answered(reply(line)) is is_answered


def test_tells_apart_needs_a_confirmation_and_a_refusal() -> None:
    assert tells_apart(reply("252 2.0.0 root"), reply("550 5.1.1 <x>: User unknown"))
    assert not tells_apart(reply("252 2.0.0 root"), reply("252 2.0.0 x"))
    assert not tells_apart(reply("252 2.0.0 root"), reply("421 4.4.2 timeout"))
    assert not tells_apart(reply("502 5.5.1 disabled"), reply("502 5.5.1 disabled"))


@pytest.mark.parametrize("line, demands", [
    ("530 5.7.0 Must issue a STARTTLS command first", True),
    ("554 5.7.0 Must issue a STARTTLS command first", True),
    ("550 5.7.1 Relay access denied", False),
    ("503 5.5.1 Error: send HELO/EHLO first", False),
])
def test_demands_tls(line: str, demands: bool) -> None:
    assert demands_tls(reply(line)) is demands
