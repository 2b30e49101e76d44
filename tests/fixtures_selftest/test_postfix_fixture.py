"""The shared Postfix and smtp-sink fixtures work (a broken fixture would fail every suite that uses it)."""

from __future__ import annotations

import smtplib
import subprocess


def test_postfix_instance_greets_and_refuses_relay(postfix_factory, loopback) -> None:
    inst = postfix_factory({"smtpd_banner": "$myhostname ESMTP"})
    with smtplib.SMTP(inst.address, inst.port, timeout=10,
                      source_address=(loopback.address(), 0)) as smtp:
        code, _ = smtp.ehlo("client.hardener.test")
        assert code == 250
        smtp.mail("a@example.org")
        code, text = smtp.rcpt("b@example.net")
        assert code in (454, 554) and b"Relay access denied" in text  # Debian: defer_unauth_destination
    assert inst.postconf("inet_interfaces") == inst.address


def test_smtp_sink_counts_messages(smtp_sink_factory) -> None:
    sink = smtp_sink_factory()
    proc = subprocess.run(["smtp-source", "-s", "2", "-m", "6", "-c",
                           f"{sink.address}:{sink.port}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sink.wait_for_messages(6, timeout=20) == 6


def test_two_instances_side_by_side(postfix_factory) -> None:
    a = postfix_factory()
    b = postfix_factory({"smtpd_banner": "$myhostname ESMTP other"})
    assert a.address != b.address
    for inst, marker in ((a, b"ESMTP Postfix"), (b, b"ESMTP other")):
        smtp = smtplib.SMTP(timeout=10)
        code, greeting = smtp.connect(inst.address, inst.port)
        assert code == 220 and marker in greeting
        smtp.quit()
