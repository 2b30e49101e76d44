"""Lint's verdicts agree with real Postfix: relaying, the greeting and VRFY.

One real Postfix instance (the lead's postfix_factory) runs one smtpd service per case, each on its
own port with the case's relay settings as master.cf `-o` overrides. lint reads the very main.cf and
master.cf that instance runs, and swaks, from an untrusted loopback source address, asks each
service to take a foreign recipient (stopping at RCPT, never DATA). lint must report open-relay for
a service exactly when that service answers 250, and relay-restrictions ("refuses every session")
exactly when Postfix's smtpd refuses to run with the service's settings.

relay_domains cannot be a per-service case: trivial-rewrite, not smtpd, decides whether a domain is
a relay domain, so an smtpd `-o relay_domains=` changes nothing (lint ignores it too). A second
instance has a top-level domain in its main.cf relay_domains.
"""

from __future__ import annotations

import smtplib
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from hardener.lint.runner import lint_path
from tests.fixtures.net import free_ports

GUARDED = "permit_mynetworks,permit_sasl_authenticated,reject_unauth_destination"
SENDER_ACCESS = "check_sender_access,hash:$config_directory/sender_access"

# name: (-o overrides, sender, recipient)
CASES = {
    "hardened": ({"smtpd_relay_restrictions": GUARDED}, "a@sender.example", "v@victim.example"),
    "permit-first": ({"smtpd_relay_restrictions": "permit_mynetworks,permit,reject_unauth_destination"},
                     "a@sender.example", "v@victim.example"),
    "forged-sender": ({"smtpd_relay_restrictions": "",
                       "smtpd_recipient_restrictions": f"permit_mynetworks,{SENDER_ACCESS},"
                                                       "reject_unauth_destination"},
                      "anyone@partner.example.net", "v@victim.example"),
    "sender-not-listed": ({"smtpd_relay_restrictions": "",
                           "smtpd_recipient_restrictions": f"permit_mynetworks,{SENDER_ACCESS},"
                                                           "reject_unauth_destination"},
                          "anyone@elsewhere.example", "v@victim.example"),
    "client-catch-all": ({"smtpd_relay_restrictions": "permit_mynetworks,check_client_access,"
                          "cidr:$config_directory/clients.cidr,reject_unauth_destination"},
                         "a@sender.example", "v@victim.example"),
    "client-list-saves": ({"smtpd_relay_restrictions": "check_client_access,static:OK,"
                                                       "reject_unauth_destination",
                           "smtpd_client_restrictions": "permit_mynetworks,reject"},
                          "a@sender.example", "v@victim.example"),
    "no-guard-anywhere": ({"smtpd_relay_restrictions": "", "smtpd_recipient_restrictions": ""},
                          "a@sender.example", "v@victim.example"),
}
# Postfix's smtpd refuses to run with these: no working guard in either list.
FATAL = {"permit-first", "no-guard-anywhere"}
TABLES = {"sender_access": "partner.example.net OK\n",
          "clients.cidr": "192.0.2.0/24 OK\n0.0.0.0/0 OK\n"}


def _rcpt_accepted(address: str, port: int, source: str, sender: str, recipient: str) -> bool:
    """True when the server answers 2xx to RCPT TO (swaks quits after RCPT, no DATA)."""
    return _rcpt_reply(address, port, source, sender, recipient).startswith("<-  2")


def _rcpt_reply(address: str, port: int, source: str, sender: str, recipient: str) -> str:
    """The server's reply line to RCPT TO as swaks prints it ('' when RCPT was never reached)."""
    run = subprocess.run(["swaks", "--server", address, "--port", str(port), "--local-interface",
                          source, "--from", sender, "--to", recipient, "--quit-after", "RCPT",
                          "--timeout", "5", "--helo", "client.example"],
                         capture_output=True, text=True, timeout=60)
    lines = run.stdout.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(" -> RCPT TO"):
            return next((x for x in lines[index + 1:] if x.startswith(("<-", "<**", "<~"))), "")
    return "(no RCPT reply) " + " | ".join(lines[-3:])


@pytest.fixture(scope="module")
def relay_lab(postfix_module_factory):
    """A Postfix instance with one smtpd service per case: {case: port}, and the instance."""
    instance = postfix_module_factory(start=False)
    ports = dict(zip(CASES, free_ports(instance.address, len(CASES))))
    services = []
    for case, (overrides, _, _) in CASES.items():
        options = "".join(f"\n  -o {name}={value}" for name, value in overrides.items())
        services.append(f"{instance.address}:{ports[case]} inet n - n - - smtpd{options}")
    master = instance.config_dir / "master.cf"
    master.write_text(master.read_text() + "\n".join(services) + "\n")
    for name, text in TABLES.items():
        (instance.config_dir / name).write_text(text)
    subprocess.run(["postmap", str(instance.config_dir / "sender_access")], check=True)
    instance.start()
    return instance, ports


def test_open_relay_verdicts_match_postfix(relay_lab, loopback) -> None:
    instance, ports = relay_lab
    result = lint_path(instance.config_dir)
    source = loopback.address()
    # the cases are independent services: ask them all at once (bounded: one thread per case)
    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        replies = dict(zip(CASES, pool.map(
            lambda case: _rcpt_reply(instance.address, ports[case], source, *CASES[case][1:]), CASES)))
    mismatches = []
    for case, reply in replies.items():
        label = f"master.cf service `{instance.address}:{ports[case]} inet`"
        relayed = reply.startswith("<-  2")
        flagged = [f for f in result.findings if f.check == "open-relay" and f.evidence.startswith(label)]
        fatal = [f for f in result.findings if f.check == "relay-restrictions"
                 and f.evidence.startswith(label) and "refuses every session" in f.evidence]
        if bool(flagged) != relayed or bool(fatal) != (case in FATAL):
            mismatches.append((case, reply, [f.evidence for f in flagged + fatal]))
    assert mismatches == []
    assert "specify at least one working instance" in instance.maillog_text()


def test_top_level_relay_domain_is_an_open_relay(postfix_module_factory, loopback) -> None:
    instance = postfix_module_factory({"relay_domains": "example.org, com",
                                       "smtpd_relay_restrictions": GUARDED.replace(",", ", ")})
    source = loopback.address()
    assert _rcpt_accepted(instance.address, instance.port, source, "a@sender.example", "v@victim.com")
    assert not _rcpt_accepted(instance.address, instance.port, source, "a@sender.example",
                              "v@victim.example")
    result = lint_path(instance.config_dir)
    flagged = [f.evidence for f in result.findings if f.check == "open-relay"]
    assert len(flagged) == 1 and "com (matches every domain under .com)" in flagged[0]


def test_banner_and_vrfy_match_postfix(relay_lab, loopback) -> None:
    """The main listener runs Debian's default main.cf: the greeting Postfix sends is the one lint's
    evidence quotes, and VRFY answers as lint says it does."""
    instance, _ = relay_lab
    client = smtplib.SMTP(timeout=10, source_address=(loopback.address(), 0))
    try:
        code, greeting = client.connect(instance.address, instance.port)
        client.ehlo("client.example")
        vrfy_code, _ = client.verify("postmaster")
        client.quit()
    finally:
        client.close()
    assert code == 220
    result = lint_path(instance.config_dir)
    leak = [f.evidence for f in result.findings if f.check == "banner-leak"]
    assert len(leak) == 1 and f"`220 {greeting.decode()}`" in leak[0]
    assert vrfy_code != 502 and any(f.check == "vrfy-enabled" for f in result.findings)
