"""mynetworks semantics checked against a real Postfix smtpd.

One Postfix instance runs one smtpd per mynetworks value (`-o mynetworks=...` per service); XCLIENT
(allowed from 127.0.0.0/8 here) sets the client address, and a RCPT to a remote domain shows how
Postfix read mynetworks: 250 (trusted, relay allowed), 554 (not trusted) or 451 4.3.0 (Postfix
could not read mynetworks). The parser must predict each answer.
"""

from __future__ import annotations

import smtplib
import subprocess
from pathlib import Path

import pytest

from hardener.postfix import mynetworks_problems, parse_main_cf, parse_mynetworks
from tests.fixtures.net import free_ports

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
    ("[::ffff:10.0.0.0]/104", "IPV6:::ffff:10.0.0.1", "denied"),
    ("[::ffff:10.0.0.0]/104", "10.0.0.1", "denied"),
    ("10.0.0.0/8", "IPV6:::ffff:10.0.0.1", "relay"),
    ("127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128", "IPV6:::ffff:127.0.0.1", "relay"),
    ("[::ffff:127.0.0.1] 10.0.0.0/8", "IPV6:::ffff:127.0.0.1", "denied"),   # mapped: never matches
    ("192.0.2.0/24 ::1", "192.0.2.9", "fatal"),            # a bare IPv6 address is a type:table too
]


DEBIAN_DEFAULT = "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128"   # Debian's postinst writes this


def _postconf_default() -> str:
    """What Postfix itself generates for mynetworks on this host (`postconf -d`: all protocols,
    mynetworks_style subnet), plus Debian's IPv4-mapped loopback as on a dual-stack Debian host."""
    generated = subprocess.run(["postconf", "-d", "-h", "mynetworks"], capture_output=True, text=True,
                               check=True, timeout=60).stdout.split()
    return " ".join(generated[:1] + ["[::ffff:127.0.0.0]/104"] + generated[1:])


GENERATED = [DEBIAN_DEFAULT, _postconf_default()]


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
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped   # smtpd turns ::ffff:a.b.c.d clients into IPv4
    for entry in entries:
        if entry.network.version == address.version and address in entry.network:
            return "denied" if entry.negated else "relay"
    return "denied"


def _entries_skipping_errors(cf):
    from hardener.postfix.mynetworks import _read
    return _read(cf)[0]


@pytest.fixture(scope="module")
def server(postfix_module_factory):
    values = sorted({value for value, _, _ in CASES} | set(GENERATED))
    inst = postfix_module_factory({
        "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "inet_protocols": "all",
        "smtpd_helo_required": "no",
    }, start=False)
    ports = dict(zip(values, free_ports(inst.address, len(values))))
    extra = [f"{inst.address}:{port} inet n - n - - smtpd -o {{mynetworks={value}}}\n"
             for value, port in ports.items()]
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


@pytest.mark.parametrize("value", GENERATED, ids=["debian-main.cf", "postconf-d"])
def test_postfix_generated_values_are_at_most_redundant(server, value: str) -> None:
    """Postfix's own values: smtpd takes them, trusts IPv4 and IPv6 loopback (a mapped client
    as IPv4), and lint calls the mapped entry redundant (info), never malformed."""
    inst, ports = server
    for client in ("127.0.0.1", "IPV6:::1", "IPV6:::ffff:127.0.0.1"):
        assert _postfix_answer(inst.address, ports[value], client) == "relay"
        assert _predict(value, client) == "relay"
    assert _postfix_answer(inst.address, ports[value], "198.51.100.7") == "denied"
    from hardener.lint.base import LintContext
    from hardener.lint.networks import (
        check_mynetworks_malformed,
        check_mynetworks_redundant,
    )

    main_cf = parse_main_cf(f"mynetworks = {value}\n", "main.cf")
    ctx = LintContext(main=main_cf, main_path=Path("main.cf"), master=None, master_path=None)
    assert check_mynetworks_malformed(ctx) == []
    redundant, = check_mynetworks_redundant(ctx)
    assert redundant.effective_severity.label == "info"
    assert "'[::ffff:127.0.0.0]/104': redundant" in redundant.evidence
