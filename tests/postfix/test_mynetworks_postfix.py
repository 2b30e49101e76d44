"""mynetworks semantics checked against a real Postfix smtpd.

One Postfix instance runs one smtpd per mynetworks value (`-o mynetworks=...` per service); XCLIENT
(allowed from 127.0.0.0/8 here) sets the client address, and a RCPT to a remote domain shows how
Postfix read mynetworks: 250 (trusted, relay allowed), 554 (not trusted) or 451 4.3.0 (Postfix
could not read mynetworks). The parser must predict each answer.
"""

from __future__ import annotations

import smtplib

import pytest

from hardener.postfix import mynetworks_problems, parse_main_cf, parse_mynetworks
from tests.fixtures.net import free_port

# (mynetworks value, client address, Postfix's answer: "relay", "denied", "lookup-error" (451 4.3.0)
# or "fatal" (smtpd exits at startup, the connection closes))
CASES = [
    ("10.0.0.0/8, 192.0.2.0/24", "10.9.8.7", "relay"),
    ("10.0.0.0/8, 192.0.2.0/24", "198.51.100.1", "denied"),
    ("10.1.2.3/24", "10.1.2.9", "lookup-error"),            # host bits set
    ("192.0.2.0/24 ::1/128", "192.0.2.9", "fatal"),  # IPv6 without [] is read as type:table
    ("127.0.0.0/8 [::ffff:]/104", "192.0.2.9", "denied"),   # junk IPv6 skipped for an IPv4 client
    ("127.0.0.0/8 [::ffff:]/104", "IPV6:2001:db8::1", "lookup-error"),
    ("mail.example.com 10.0.0.0/8", "10.1.1.1", "relay"),   # host names are ignored
    ("10.0.0.0/8 # office 192.0.2.0/24", "192.0.2.1", "denied"),  # '#' drops the rest
    ("!10.0.0.5 10.0.0.0/8", "10.0.0.5", "denied"),
    ("!10.0.0.5 10.0.0.0/8", "10.0.0.6", "relay"),
    ("10.0.0.0/8,, 192.0.2.0/24,", "192.0.2.1", "relay"),   # empty elements are skipped
    ("[2001:db8::]/32", "IPV6:2001:db8::1", "relay"),
]


def _predict(value: str, client: str) -> str:
    cf = parse_main_cf(f"mynetworks = {value}\n")
    if any(p.fatal for p in mynetworks_problems(cf)):
        return "fatal"
    if any(p.rejected for p in mynetworks_problems(cf)):
        # A rejected element fails the lookup only when Postfix reaches it for this client's
        # address family (match_hostaddr skips IPv6 patterns for IPv4 clients and vice versa).
        v6_client = client.startswith("IPV6:")
        if any(p.rejected and (":" in p.entry) == v6_client for p in mynetworks_problems(cf)):
            return "lookup-error"
        try:
            entries = [e for e in _entries_skipping_errors(cf)]
        except Exception:
            return "lookup-error"
    else:
        entries = parse_mynetworks(cf)
    import ipaddress
    address = ipaddress.ip_address(client.removeprefix("IPV6:"))
    for entry in entries:
        if entry.network.version == address.version and address in entry.network:
            return "denied" if entry.negated else "relay"
    return "denied"


def _entries_skipping_errors(cf):
    from hardener.postfix.mynetworks import _read
    return _read(cf)[0]


@pytest.fixture(scope="module")
def server(postfix_module_factory):
    values = sorted({value for value, _, _ in CASES})
    inst = postfix_module_factory({
        "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "inet_protocols": "all",
        "smtpd_helo_required": "no",
    }, start=False)
    ports = {}
    extra = []
    for value in values:
        port = free_port(inst.address)
        ports[value] = port
        extra.append(f"{inst.address}:{port} inet n - n - - smtpd -o {{mynetworks={value}}}\n")
    with open(inst.config_dir / "master.cf", "a") as master:
        master.write("".join(extra))
    inst.start()
    return inst, ports


def _postfix_answer(address: str, port: int, client: str) -> str:
    try:
        smtp = smtplib.SMTP(address, port, timeout=10)
    except smtplib.SMTPServerDisconnected:
        return "fatal"
    with smtp:
        smtp.ehlo("test.example")
        code, _ = smtp.docmd("XCLIENT", f"ADDR={client} NAME=[UNAVAILABLE]")
        assert code == 220, code
        smtp.ehlo("test.example")
        code, _ = smtp.mail("sender@example.org")
        assert code == 250
        code, reply = smtp.rcpt("someone@remote.example.net")
    if code == 250:
        return "relay"
    if code == 451 and b"4.3.0" in reply:
        return "lookup-error"
    assert code in (554, 454), (code, reply)
    return "denied"


@pytest.mark.parametrize("value,client,expected", CASES)
def test_parser_predicts_postfix(server, value: str, client: str, expected: str) -> None:
    inst, ports = server
    assert _postfix_answer(inst.address, ports[value], client) == expected
    assert _predict(value, client) == expected
