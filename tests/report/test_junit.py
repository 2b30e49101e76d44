"""JUnit XML: one testsuite per target, one testcase per check; valid XML even for hostile text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hardener.report.model import CheckStatus, Finding, Report, TargetResult
from hardener.report.output import render_report
from tests.report.sample import clean_report, sample_report


def parse(report: Report) -> ET.Element:
    text = render_report(report, "junit")
    assert text.startswith("<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(text.encode("utf-8"))


def test_one_suite_per_target_one_case_per_check() -> None:
    root = parse(sample_report())
    assert root.tag == "testsuites"
    config, network = root.findall("testsuite")
    assert config.get("name") == "/etc/postfix (config)"
    assert [c.get("name") for c in config.findall("testcase")] == [
        "HRD-BANNER-001 banner-leak", "HRD-PROTO-003 size-unlimited", "HRD-RELAY-002 relay-restrictions",
        "HRD-PRIV-001 chroot-disabled", "HRD-ENUM-001 vrfy-enabled", "HRD-RELAY-001 open-relay"]
    assert (config.get("tests"), config.get("failures"), config.get("errors"), config.get("skipped")) == ("6", "4", "0", "0")
    assert (network.get("tests"), network.get("failures"), network.get("errors"), network.get("skipped")) == ("6", "3", "1", "1")
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("12", "7", "1", "1")


def test_failure_lists_findings_error_and_skipped_map_statuses() -> None:
    network = parse(sample_report()).findall("testsuite")[1]
    cases = {c.get("name").split()[1]: c for c in network.findall("testcase")}
    failure = cases["open-relay"].find("failure")
    assert failure.get("type") == "critical"
    assert "RCPT TO:<user%example.net@[127.0.0.2]> -> 250" in failure.text
    assert cases["tls-weak-protocol"].find("error").get("message") == "timeout after 10s during STARTTLS"
    assert cases["smtp-smuggling"].find("skipped").get("message") == "needs --intrusive"
    assert list(cases["helo-not-required"]) == []  # passed
    props = {p.get("name"): p.get("value") for p in network.find("properties")}
    assert props["banner"] == "220 mx.example.com ESMTP Postfix (Debian/GNU)"
    assert props["status"] == "incomplete"


def test_unrecorded_finding_and_target_error_are_not_dropped() -> None:
    target = TargetResult(target="127.0.0.9:25", vantage="network", error="connection refused")
    target.add(Finding.of("vrfy-enabled", "VRFY root -> 250"))  # check never recorded
    suite = parse(Report(targets=[target])).find("testsuite")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["target", "HRD-ENUM-001 vrfy-enabled"]
    assert suite.find("testcase/error").get("message") == "connection refused"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "1")


def test_control_characters_do_not_break_the_xml() -> None:
    target = TargetResult(target="127.0.0.4:25", vantage="network", banner="220 \x00\x01\x1b]]>&<x>")
    target.add(Finding.of("banner-leak", "220 \x00\x0b\x1b ESMTP ]]> </failure>"))
    target.record("banner-leak", CheckStatus.FAILED)
    target.record("starttls-missing", CheckStatus.ERROR, "reset \x00 by peer")
    suite = parse(Report(targets=[target])).find("testsuite")
    assert "\\x00" in suite.find("testcase/failure").text
    assert "</failure>" in suite.find("testcase/failure").text


def test_clean_report_has_passing_cases_only() -> None:
    root = parse(clean_report())
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")
