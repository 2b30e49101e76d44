"""The table: readable plain text off a terminal, colour on one; severity order; hostile text inert."""

from __future__ import annotations

from hardener.report.model import CheckStatus, Finding, Location, Report, TargetResult
from hardener.report.output import render_report
from tests.report.sample import clean_report, sample_report


def test_plain_table_is_ascii_without_escape_codes() -> None:
    text = render_report(sample_report(), "table")
    assert "\x1b" not in text
    assert text.isascii()
    assert all(line == line.rstrip() for line in text.splitlines())


def test_table_shows_target_header_findings_in_severity_order_and_summary() -> None:
    text = render_report(sample_report(), "table")
    assert "127.0.0.2:2525  vantage: network  status: incomplete" in text
    assert "banner: 220 mx.example.com ESMTP Postfix (Debian/GNU)" in text
    config_part = text.split("127.0.0.2:2525")[0]
    order = [config_part.index(cid) for cid in ("HRD-RELAY-002", "HRD-BANNER-001", "HRD-PRIV-001", "HRD-PROTO-003")]
    assert order == sorted(order)
    assert "/etc/postfix/main.cf:12" in text
    assert "checks not completed:" in text and "tls-weak-protocol: timeout after 10s" in text
    assert "skipped: smtp-smuggling (needs --intrusive)" in text
    assert text.rstrip().splitlines()[-1] == (
        "Summary: 7 findings (2 critical, 0 high, 3 medium, 2 low, 0 info) in 2 targets; 1 incomplete")


def test_colour_table_for_terminals() -> None:
    text = render_report(sample_report(), "table", color=True, width=140)
    assert "\x1b[" in text


def test_clean_report_says_so() -> None:
    text = render_report(clean_report(), "table")
    assert "no findings" in text
    assert "Summary: 0 findings" in text


def test_control_characters_from_a_server_are_shown_escaped() -> None:
    target = TargetResult(target="127.0.0.3:25", vantage="network",
                          banner="220 evil\x1b[2J\x1b]0;pwned\x07 ESMTP\r\n")
    target.add(Finding.of("banner-leak", "220 [markup] \x1b[31mred", location=Location("x", 1)))
    target.record("banner-leak", CheckStatus.FAILED)
    for color in (False, True):
        text = render_report(Report(targets=[target]), "table", color=color, width=120)
        assert "\x1b[2J" not in text and "\x07" not in text and "\x1b]0" not in text
        assert "\\x1b[2J" in text
        assert "[markup]" in text  # rich markup is not interpreted
