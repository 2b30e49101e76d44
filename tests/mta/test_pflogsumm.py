"""Debian's pflogsumm reads the daemon's maillog: it counts the deliveries and the rejects."""

from __future__ import annotations

import re
import smtplib
import subprocess

from tests.fixtures.relay import NO_TLS, queue_count, smtp_source, wait_until


def _summary_count(report: str, label: str) -> int:
    m = re.search(rf"^\s*(\d+)\s+{label}\b", report, re.M)
    assert m, f"no {label!r} line in pflogsumm output:\n{report[:2000]}"
    return int(m.group(1))


def test_pflogsumm_counts_deliveries_and_rejects(mta_factory, smtp_sink_factory, loopback):
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    assert smtp_source(mta, 25, 2).returncode == 0
    untrusted = loopback.address()
    for n in range(3):  # relay attempts from a client outside mynetworks
        with smtplib.SMTP(mta.address, mta.port, source_address=(untrusted, 0), timeout=30) as c:
            c.ehlo("outsider.test")
            c.mail("spammer@evil.example")
            code, _ = c.rcpt(f"victim{n}@elsewhere.example")
            assert code >= 500
    assert sink.wait_for_messages(25, timeout=60) == 25
    assert wait_until(lambda: queue_count(mta) == 0, 30)
    wait_until(lambda: mta.log_text().count(": removed") == 25, 10)
    report = subprocess.run(["pflogsumm", "--syslog-name=hardener", str(mta.log_path)],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert _summary_count(report.stdout, "received") == 25
    assert _summary_count(report.stdout, "delivered") == 25
    assert _summary_count(report.stdout, "rejected") == 3
