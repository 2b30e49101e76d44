"""A fixed Report built from real catalog controls, shared by the report tests and golden files."""

from __future__ import annotations

from hardener.controls import Severity
from hardener.report.model import CheckStatus, Finding, Location, Report, TargetResult


def sample_report() -> Report:
    """Two targets (a config lint with findings and a network audit left incomplete), one run note."""
    config = TargetResult(target="/etc/postfix", vantage="config")
    config.add(Finding.of("banner-leak", "smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)",
                          location=Location("/etc/postfix/main.cf", 3)))
    config.add(Finding.of("size-unlimited", "message_size_limit = 0",
                          location=Location("/etc/postfix/main.cf", 40)))
    config.add(Finding.of("relay-restrictions",
                          "smtpd_relay_restrictions = permit_mynetworks, permit",
                          location=Location("/etc/postfix/main.cf", 12),
                          detail="'permit' before reject_unauth_destination accepts everything"))
    config.add(Finding.of("chroot-disabled", "smtp inet n - n - - smtpd",
                          location=Location("/etc/postfix/master.cf", 12)))
    for slug, status in [("banner-leak", CheckStatus.FAILED), ("size-unlimited", CheckStatus.FAILED),
                         ("relay-restrictions", CheckStatus.FAILED),
                         ("chroot-disabled", CheckStatus.FAILED),
                         ("vrfy-enabled", CheckStatus.PASSED), ("open-relay", CheckStatus.PASSED)]:
        config.record(slug, status)

    network = TargetResult(target="127.0.0.2:2525", vantage="network",
                           banner="220 mx.example.com ESMTP Postfix (Debian/GNU)")
    network.add(Finding.of("open-relay", "RCPT TO:<user%example.net@[127.0.0.2]> -> 250 2.1.5 Ok",
                           confirmed=False))
    network.add(Finding.of("banner-leak", "220 mx.example.com ESMTP Postfix (Debian/GNU)"))
    network.add(Finding.of("vrfy-enabled", "VRFY root -> 252 2.0.0 root", severity=Severity.LOW,
                           drift="new"))
    network.record("open-relay", CheckStatus.FAILED)
    network.record("banner-leak", CheckStatus.FAILED)
    network.record("vrfy-enabled", CheckStatus.FAILED)
    network.record("tls-weak-protocol", CheckStatus.ERROR, "timeout after 10s during STARTTLS")
    network.record("smtp-smuggling", CheckStatus.SKIPPED, "needs --intrusive")
    network.record("helo-not-required", CheckStatus.PASSED)
    notes = ["baseline.yaml:4: suppression of HRD-BANNER-001 on * expired on 2026-01-31 (reason was: "
             "legacy appliance); its findings are reported again"]
    return Report(targets=[config, network], command="audit", notes=notes)


def clean_report() -> Report:
    """One complete target with no findings."""
    target = TargetResult(target="out/main.cf", vantage="config")
    target.record("open-relay", CheckStatus.PASSED)
    return Report(targets=[target], command="lint")
