"""One verdict per control: `hardener lint` of a Postfix's files and `hardener audit` of that Postfix
running agree on every control both vantages judge (DESIGN.md, "One verdict per control").

Each case below is a real Postfix instance (postfix_module_factory) started from the host's main.cf
plus the case's settings. The lint library reads the instance's own main.cf and master.cf; the audit
library probes the running instance from an untrusted loopback vantage. For every control with both
vantages, the two must report the same thing: a finding, or none. Where they may not, the case names
the catalog's documented blind spot (Control.blind_spots) for that control, and the test checks the
catalog holds it and that the difference really shows (a stale excuse fails too).

The cases switch each control on and off, through Postfix's defaults and through explicit settings;
`expect` says what the case is about (slug -> finding expected from both vantages). The instances
start one after another and are audited concurrently, so the whole matrix takes well under 2 minutes.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from hardener.audit.context import AuditOptions, AuditTarget
from hardener.audit.runner import audit_target
from hardener.audit.tls_probe import PROBED_PROTOCOLS, can_offer
from hardener.controls import CATALOG, Severity, Vantage, by_slug
from hardener.lint.runner import lint_path
from hardener.report.model import CheckStatus, TargetResult

HOSTNAME = "pf.hardener.test"
# Every control checked both from the config and from the network.
BOTH = tuple(c.slug for c in CATALOG if {Vantage.CONFIG, Vantage.NETWORK} <= set(c.vantages))
# Controls the audit does not run with the options used here, and the blind spot that says why.
AUDIT_NOT_RUN = {"smtp-smuggling": "not-intrusive", "mynetworks-too-broad": "one-vantage"}

SECURE_TLS = {"smtpd_tls_security_level": "may", "smtpd_tls_protocols": ">=TLSv1.2",
              "smtpd_tls_mandatory_protocols": ">=TLSv1.2"}
NO_TLS = {"smtpd_tls_security_level": "none"}
CLEAN_BANNER = {"smtpd_banner": "$myhostname ESMTP"}


@dataclass(frozen=True)
class Case:
    """One Postfix configuration of the matrix."""

    name: str
    settings: dict[str, str]
    expect: dict[str, bool]                              # slug -> finding expected (both vantages)
    cert: str | None = None                              # a cert_factory certificate to configure
    differs: dict[str, str] = field(default_factory=dict)  # slug -> catalog blind-spot key
    intrusive: bool = False                              # audit with --intrusive --rcpt (smuggling)


CASES = (
    Case("debian-defaults", {**NO_TLS},
         {"banner-leak": True, "vrfy-enabled": True, "expn-enabled": False, "helo-not-required": True,
          "pipelining-unauth": True, "starttls-missing": True, "auth-plaintext": False,
          "size-unlimited": False, "open-relay": False}),
    Case("hardened-explicit", {**CLEAN_BANNER, **SECURE_TLS, "disable_vrfy_command": "yes",
                               "smtpd_helo_required": "yes",
                               "smtpd_data_restrictions": "reject_unauth_pipelining",
                               "smtpd_sasl_auth_enable": "yes", "smtpd_tls_auth_only": "yes",
                               "message_size_limit": "20480000"},
         {"banner-leak": False, "vrfy-enabled": False, "helo-not-required": False,
          "pipelining-unauth": False, "starttls-missing": False, "auth-plaintext": False,
          "size-unlimited": False, "tls-weak-protocol": False, "tls-cert-invalid": False},
         cert="valid"),
    Case("insecure-explicit", {**NO_TLS, "smtpd_banner": "$myhostname ESMTP $mail_name $mail_version",
                               "disable_vrfy_command": "no", "smtpd_helo_required": "no",
                               "smtpd_forbid_unauth_pipelining": "no", "smtpd_data_restrictions": "",
                               "message_size_limit": "0", "smtpd_sasl_auth_enable": "yes",
                               "smtpd_tls_auth_only": "no"},
         {"banner-leak": True, "vrfy-enabled": True, "helo-not-required": True,
          "pipelining-unauth": True, "starttls-missing": True, "auth-plaintext": True,
          "size-unlimited": True}),
    # VRFY answered 252 for every name (no local recipient check): answered, though it tells no user
    # apart (that would be user-enumeration, a network-only control).
    Case("vrfy-accept-all", {**NO_TLS, **CLEAN_BANNER, "local_recipient_maps": ""},
         {"vrfy-enabled": True, "banner-leak": False}),
    Case("vrfy-keyword-hidden", {**NO_TLS, "smtpd_discard_ehlo_keywords": "vrfy"},
         {"vrfy-enabled": True}),
    Case("banner-version-only", {**NO_TLS, "smtpd_banner": "$myhostname ESMTP $mail_version",
                                 "disable_vrfy_command": "yes"},
         {"banner-leak": True, "vrfy-enabled": False}),
    Case("banner-reject-footer", {**NO_TLS, **CLEAN_BANNER,
                                  "smtpd_reject_footer": "Powered by Postfix on Debian"},
         {"banner-leak": True}),
    Case("banner-host-named-postfix", {**NO_TLS, **CLEAN_BANNER, "myhostname": "postfix.hardener.test",
                                       "smtpd_reject_footer": "Contact $server_name at $client_address"},
         {"banner-leak": False}),
    Case("helo-pipelining-forbidden", {**NO_TLS, "smtpd_helo_required": "yes",
                                       "smtpd_forbid_unauth_pipelining": "yes"},
         {"helo-not-required": False, "pipelining-unauth": False}),
    Case("size-hidden", {**NO_TLS, "smtpd_discard_ehlo_keywords": "size"},
         {"size-unlimited": True}),
    # smtpd refuses to start without reject_unauth_destination; a catch-all relay_domains table
    # makes every domain a relay domain instead.
    Case("open-relay", {**NO_TLS, "relay_domains": "static:ALL"}, {"open-relay": True}),
    # ... and behind required STARTTLS: the audit runs its relay battery after STARTTLS, as it must.
    Case("open-relay-behind-tls", {**SECURE_TLS, "smtpd_tls_security_level": "encrypt",
                                   "relay_domains": "static:ALL"},
         {"open-relay": True, "starttls-missing": False}, cert="valid"),
    Case("tls-legacy-defaults", {"smtpd_tls_security_level": "", "smtpd_use_tls": "yes"},
         {"starttls-missing": False, "tls-weak-protocol": True, "tls-cert-invalid": False},
         cert="valid"),
    Case("tls-self-signed", {**SECURE_TLS}, {"tls-cert-invalid": True, "tls-weak-protocol": False},
         cert="self_signed"),
    Case("tls-expired", {**SECURE_TLS}, {"tls-cert-invalid": True}, cert="expired"),
    Case("tls-wrong-name", {**SECURE_TLS}, {"tls-cert-invalid": True}, cert="wrong_name"),
    Case("tls-weak-key", {**SECURE_TLS}, {"tls-cert-invalid": True}, cert="weak_key"),
    Case("tls-no-certificate", {"smtpd_tls_security_level": "may"}, {"starttls-missing": True}),
    Case("tls-keyword-hidden", {**SECURE_TLS, "smtpd_discard_ehlo_keywords": "starttls"},
         {"starttls-missing": True}, cert="valid"),
    # A certificate Postfix cannot load: it advertises STARTTLS and answers 454. lint cannot know
    # (the file may exist only on the server), and the network can then test no protocol.
    Case("tls-certificate-missing", {"smtpd_tls_security_level": "may",
                                     "smtpd_tls_cert_file": "/nonexistent/hardener-cert.pem",
                                     "smtpd_tls_key_file": "/nonexistent/hardener-key.pem"},
         {"auth-plaintext": False},
         differs={"starttls-missing": "certificate-unloadable", "tls-weak-protocol": "no-handshake"}),
    Case("auth-before-tls", {**SECURE_TLS, "smtpd_sasl_auth_enable": "yes"},
         {"auth-plaintext": True, "starttls-missing": False}, cert="valid"),
    # Level encrypt: AUTH only after STARTTLS; VRFY, MAIL and pipelining are judged behind STARTTLS.
    Case("tls-encrypt", {**SECURE_TLS, "smtpd_tls_security_level": "encrypt",
                         "smtpd_sasl_auth_enable": "yes"},
         {"auth-plaintext": False, "vrfy-enabled": True, "helo-not-required": True,
          "pipelining-unauth": True}, cert="valid"),
    Case("tls-encrypt-hardened", {**SECURE_TLS, "smtpd_tls_security_level": "encrypt",
                                  "disable_vrfy_command": "yes", "smtpd_helo_required": "yes",
                                  "smtpd_data_restrictions": "reject_unauth_pipelining"},
         {"vrfy-enabled": False, "helo-not-required": False, "pipelining-unauth": False},
         cert="valid"),
    # smtp-smuggling needs real messages: --intrusive --rcpt, delivered to the discard transport.
    Case("smuggling-exposed", {**NO_TLS, "local_transport": "discard", "smtpd_forbid_bare_newline": "no"},
         {"smtp-smuggling": True}, intrusive=True),
    Case("smuggling-forbidden", {**NO_TLS, "local_transport": "discard",
                                 "smtpd_forbid_bare_newline": "yes"},
         {"smtp-smuggling": False}, intrusive=True),
)


@dataclass
class Outcome:
    """What each vantage said about one case."""

    lint: TargetResult
    audit: TargetResult
    seconds: float = 0.0


def finding_from(result: TargetResult, slug: str) -> bool:
    """Whether `result` reports `slug` (above info)."""
    return any(f.check == slug and f.effective_severity > Severity.INFO for f in result.findings)


def status_of(result: TargetResult, slug: str) -> CheckStatus | None:
    return next((c.status for c in result.checks if c.check == slug), None)


def _detail(result: TargetResult, slug: str) -> str:
    check = next((c for c in result.checks if c.check == slug), None)
    evidence = "; ".join(f.evidence for f in result.findings if f.check == slug)
    return f"{check.status.value if check else 'not recorded'}: {evidence or (check.detail if check else '')}"


@pytest.fixture(scope="module")
def matrix(postfix_module_factory, cert_factory, loopback) -> dict[str, Outcome]:
    """Start every case, lint it, then audit all of them concurrently."""
    certs = {name: getattr(cert_factory, name)(HOSTNAME) for name in
             ("valid", "self_signed", "expired", "wrong_name", "weak_key")}
    ca_file = certs["valid"].ca
    instances = {}
    for case in CASES:
        # notify_classes: no postmaster notices (the 454 case is a "software" error) into the
        # machine's own /var/mail; it changes nothing any control judges.
        settings = {"myhostname": HOSTNAME, "notify_classes": "", **case.settings}
        if case.cert:
            settings["smtpd_tls_chain_files"] = str(certs[case.cert].combined)
        instances[case.name] = postfix_module_factory(settings, start=False)
    # `postfix start` takes about two seconds, mostly waiting: start them side by side
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda inst: inst.start(), instances.values()))
    lints = {name: lint_path(inst.config_dir) for name, inst in instances.items()}
    vantage = loopback.address()   # untrusted: the instances trust 127.0.0.1/32 only

    async def audit_all() -> dict[str, tuple[TargetResult, float]]:
        semaphore = asyncio.Semaphore(8)

        async def one(case: Case) -> tuple[str, tuple[TargetResult, float]]:
            inst = instances[case.name]
            myhostname = case.settings.get("myhostname", HOSTNAME)
            options = AuditOptions(source_addresses=(vantage,), ca_file=ca_file, timeout=10,
                                   intrusive=case.intrusive,
                                   rcpt=f"postmaster@{myhostname}" if case.intrusive else None)
            async with semaphore:
                start = time.monotonic()
                result, _ctx = await audit_target(AuditTarget(inst.address, inst.port), options)
                return case.name, (result, time.monotonic() - start)

        return dict(await asyncio.gather(*(one(c) for c in CASES)))

    audits = asyncio.run(audit_all())
    return {name: Outcome(lints[name], audits[name][0], audits[name][1]) for name in instances}


def test_matrix_is_large_enough() -> None:
    assert len(CASES) >= 12
    assert len({c.name for c in CASES}) == len(CASES)


def test_every_both_vantage_control_is_seen_on_and_off() -> None:
    """Each control with both vantages is expected on in some case and off in another.

    expn-enabled is the exception the catalog documents: no main.cf can turn EXPN on in Postfix.
    """
    for slug in BOTH:
        seen = {case.expect[slug] for case in CASES if slug in case.expect}
        if slug == "expn-enabled":
            assert seen == {False}
            assert "Never from a main.cf" in by_slug(slug).rule(Vantage.CONFIG)
        elif slug == "mynetworks-too-broad":
            continue  # needs two vantage points; covered by tests/audit (AUDIT_NOT_RUN here)
        else:
            assert seen == {True, False}, f"{slug}: the matrix has it only {seen}"


def test_expected_differences_are_documented_in_the_catalog() -> None:
    for case in CASES:
        for slug, key in case.differs.items():
            by_slug(slug).blind_spot(key)   # KeyError names the missing blind spot
    for slug, key in AUDIT_NOT_RUN.items():
        assert by_slug(slug).blind_spot(key).vantage is Vantage.NETWORK


def local_differences(case: Case) -> dict[str, str]:
    """Blind spots of this machine rather than of the case: an OpenSSL that cannot offer TLS 1.0
    or 1.1 at all leaves the audit unable to test weak protocols (catalog: local-openssl)."""
    offers_weak = any(can_offer(version) for name, version in PROBED_PROTOCOLS
                      if name in ("SSLv3", "TLSv1", "TLSv1.1"))
    if case.expect.get("tls-weak-protocol") and not offers_weak:
        return {"tls-weak-protocol": "local-openssl"}
    return {}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_lint_and_audit_agree(case: Case, matrix: dict[str, Outcome]) -> None:
    outcome = matrix[case.name]
    differs = {**case.differs, **local_differences(case)}
    assert outcome.audit.error is None, f"audit of {case.name} failed: {outcome.audit.error}"
    problems: list[str] = []
    for slug in BOTH:
        lint_found = finding_from(outcome.lint, slug)
        audit_found = finding_from(outcome.audit, slug)
        audit_status = status_of(outcome.audit, slug)
        said = (f"{slug}: lint {_detail(outcome.lint, slug)} | audit {_detail(outcome.audit, slug)}")
        if audit_status is CheckStatus.ERROR:
            problems.append(f"audit could not check {said}")
            continue
        if slug in AUDIT_NOT_RUN and not (case.intrusive and slug == "smtp-smuggling"):
            if audit_status is not CheckStatus.SKIPPED:
                problems.append(f"expected the audit to skip ({AUDIT_NOT_RUN[slug]}): {said}")
            continue
        if slug in differs:
            by_slug(slug).blind_spot(differs[slug])
            if lint_found == audit_found:
                problems.append(f"documented difference {differs[slug]!r} no longer shows: {said}")
            continue
        if lint_found != audit_found:
            problems.append(f"disagree on {said}")
        elif slug in case.expect and lint_found != case.expect[slug]:
            problems.append(f"both {'report' if lint_found else 'pass'}, expected the opposite: {said}")
    for slug in case.expect:
        if slug in differs and slug not in local_differences(case) or slug not in BOTH:
            problems.append(f"case lists {slug} in expect but it is not compared")
    assert not problems, f"{case.name}:\n  " + "\n  ".join(problems)
