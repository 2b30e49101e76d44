"""Small pieces of lint: restriction evaluation, banner words, certificate names (protocol lists:
tests/postfix/test_tls_protocols.py)."""

from __future__ import annotations

import pytest

from hardener.lint.banner import leaks
from hardener.lint.certs import name_matches
from hardener.lint.restrictions import Outcome, Scenario, evaluate, has_required


@pytest.mark.parametrize("tokens, outcome, token", [
    (["permit_mynetworks", "permit_sasl_authenticated", "reject_unauth_destination"],
     Outcome.REJECT, "reject_unauth_destination"),
    (["permit_mynetworks", "permit"], Outcome.PERMIT, "permit"),
    ([], Outcome.END, None),
    (["warn_if_reject", "reject_unauth_destination", "permit"], Outcome.PERMIT, "permit"),
    (["check_client_access", "static:OK", "reject"], Outcome.PERMIT, "check_client_access"),
    (["check_client_access", "static:REJECT", "permit"], Outcome.REJECT, "check_client_access"),
    (["check_policy_service", "{ inet:127.0.0.1:9998, timeout=10s }", "reject_unauth_destination"],
     Outcome.REJECT, "reject_unauth_destination"),
    (["sleep", "1", "permit_auth_destination", "defer_unauth_destination"],
     Outcome.REJECT, "defer_unauth_destination"),
    (["my_class", "reject"], Outcome.PERMIT, "permit"),
])
def test_evaluate_for_an_untrusted_client(tokens, outcome: Outcome, token) -> None:
    decision = evaluate(tokens, {"my_class": ["permit_mynetworks", "permit"]})
    assert (decision.outcome, decision.token) == (outcome, token)


def test_relay_domains_matching_everything_disarms_the_guard() -> None:
    wide = Scenario(foreign_domain_is_relay_domain=True)
    assert evaluate(["reject_unauth_destination"], {}, wide).outcome is Outcome.END
    assert evaluate(["permit_auth_destination", "reject"], {}, wide).outcome is Outcome.PERMIT


def test_pipelining_goal() -> None:
    pipelining = Scenario(goal="pipelining")
    assert evaluate(["reject_unauth_pipelining"], {}, pipelining).outcome is Outcome.REJECT
    assert evaluate(["permit", "reject_unauth_pipelining"], {}, pipelining).outcome is Outcome.PERMIT


@pytest.mark.parametrize("tokens, required", [
    (["permit_mynetworks", "reject_unauth_destination"], True),
    (["permit_mynetworks", "permit", "reject_unauth_destination"], False),   # ignored after permit
    (["warn_if_reject", "reject_unauth_destination"], False),
    (["my_class"], True),
    (["permit_mynetworks", "defer_if_permit"], True),
    ([], False),
])
def test_has_required_follows_smtpd_check(tokens, required: bool) -> None:
    assert has_required(tokens, {"my_class": ["reject"]}) is required


@pytest.mark.parametrize("text, found", [
    ("mx.example.com ESMTP Postfix (Debian/GNU)", ["Postfix", "Debian/GNU"]),
    ("mx.example.com ESMTP Postfix 3.7.11", ["Postfix 3.7.11"]),
    ("mx.example.com ESMTP", []),
    ("mx.example.com ESMTP ready", []),
    ("mx.example.com ESMTP Exim 4.96 Ubuntu", ["Exim 4.96", "Ubuntu"]),
    ("mx.example.com ESMTP 3.7.11", ["3.7.11"]),            # a bare version number
    ("mx.example.com ESMTP Linux", ["Linux"]),
    ("mx.example.com [192.0.2.1] ready", []),                 # an address is not a version
])
def test_banner_words(text: str, found: list[str]) -> None:
    assert leaks(text) == found


@pytest.mark.parametrize("pattern, host, ok", [
    ("mx.example.com", "mx.example.com", True),
    ("MX.example.com", "mx.example.com.", True),
    ("*.example.com", "mx.example.com", True),
    ("*.example.com", "a.mx.example.com", False),
    ("*.example.com", "example.com", False),
    ("other.example.net", "mx.example.com", False),
])
def test_certificate_name_matching(pattern: str, host: str, ok: bool) -> None:
    assert name_matches(pattern, host) is ok
