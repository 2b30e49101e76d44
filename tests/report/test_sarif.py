"""SARIF: schema-valid (official 2.1.0 schema), rules from the catalog, GitHub-acceptable locations."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import pytest

from hardener.controls import CATALOG, Severity
from hardener.report.formats.sarif import FINGERPRINT_KEY, artifact_for, evidence_kind
from hardener.report.model import CheckStatus, Finding, Location, Report, TargetResult
from hardener.report.output import render_report
from tests.report.sample import clean_report, sample_report
from tests.report.sarif_schema import SCHEMA_PATH, sarif_errors


def sarif(report: Report) -> dict:
    return json.loads(render_report(report, "sarif"))


def hostile_report() -> Report:
    """Targets and evidence with characters that must not break the log or its URIs."""
    v6 = TargetResult(target="[2001:db8::25]:2525", vantage="network", banner="220 x\x00\x1b ESMTP")
    v6.add(Finding.of("banner-leak", "220 x\x00\x1b ESMTP Postfix \u202e"))
    v6.record("banner-leak", CheckStatus.FAILED)
    host = TargetResult(target="gw1 (root@203.0.113.10)", vantage="host")
    host.add(Finding.of("queue-permissions", "drwxrwxrwx postfix /var/spool/postfix/maildrop",
                        location=Location("/var/spool/postfix/maildrop")))
    host.add(Finding.of("runs-as-root", "smtpd pid 42 uid 0"))
    config = TargetResult(target="etc dir/main.cf", vantage="config")
    config.add(Finding.of("surprising-setting", "default_transport = error",
                          location=Location("c:weird dir/main.cf", 7)))
    config.add(Finding.of("size-unlimited", "message_size_limit = 0"))
    return Report(targets=[v6, host, config])


def test_vendored_schema_is_the_official_file() -> None:
    data = SCHEMA_PATH.read_bytes()
    assert len(data) == 112768
    assert hashlib.sha256(data).hexdigest() == (
        "ddddcccbf95c7c50c037b5b07eff4140556278ca574ff374db46786b5fce7949")


@pytest.mark.parametrize("build", [sample_report, clean_report, hostile_report, Report])
def test_sarif_validates_against_the_sarif_2_1_0_schema(build) -> None:
    assert sarif_errors(sarif(build())) == []


def test_schema_check_catches_a_broken_log() -> None:
    log = sarif(sample_report())
    log["runs"][0]["results"][0]["level"] = "fatal"
    log["runs"][0]["results"][1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "a b:[x"
    assert len(sarif_errors(log)) == 2


def test_driver_lists_every_catalog_control_as_a_rule() -> None:
    run = sarif(clean_report())["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "hardener" and driver["version"] and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == [c.id for c in CATALOG]
    for rule, control in zip(driver["rules"], CATALOG):
        assert rule["name"] == control.slug
        assert rule["shortDescription"]["text"] == control.title
        assert rule["fullDescription"]["text"] == control.rationale
        assert rule["help"]["text"] == control.remediation and control.remediation in rule["help"]["markdown"]
        assert rule["properties"]["security-severity"] == control.security_severity
        assert "security" in rule["properties"]["tags"]
    assert run["results"] == []
    assert run["invocations"][0]["executionSuccessful"] is True


def test_results_reference_rules_with_levels_by_severity() -> None:
    run = sarif(sample_report())["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    levels = {}
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        levels[(result["properties"]["target"], result["ruleId"])] = result["level"]
        assert result["message"]["text"]
    assert levels[("127.0.0.2:2525", "HRD-RELAY-001")] == "error"      # critical
    assert levels[("127.0.0.2:2525", "HRD-BANNER-001")] == "warning"   # medium
    assert levels[("127.0.0.2:2525", "HRD-ENUM-001")] == "note"        # overridden to low
    assert levels[("/etc/postfix", "HRD-PROTO-003")] == "note"         # low
    assert len(run["results"]) == 7


def test_every_location_is_a_file_path_github_accepts() -> None:
    for build in (sample_report, hostile_report):
        for result in sarif(build())["runs"][0]["results"]:
            assert len(result["locations"]) == 1
            physical = result["locations"][0]["physicalLocation"]
            uri = physical["artifactLocation"]["uri"]
            assert urlsplit(uri).scheme in ("", "file"), uri
            assert physical["region"]["startLine"] >= 1


def test_config_findings_point_at_file_and_line_network_at_placeholder() -> None:
    run = sarif(sample_report())["runs"][0]
    by_rule = {(r["properties"]["vantage"], r["ruleId"]): r for r in run["results"]}
    config = by_rule[("config", "HRD-RELAY-002")]["locations"][0]
    assert config["physicalLocation"] == {"artifactLocation": {"uri": "file:///etc/postfix/main.cf"},
                                          "region": {"startLine": 12}}
    network = by_rule[("network", "HRD-RELAY-001")]["locations"][0]
    assert network["physicalLocation"]["artifactLocation"]["uri"] == "hardener/network/127.0.0.2_2525"
    assert network["logicalLocations"][0]["fullyQualifiedName"] == "smtp://127.0.0.2:2525"


def test_artifact_paths_for_relative_host_and_odd_names() -> None:
    rel = TargetResult(target="out", vantage="config")
    assert artifact_for(rel, Finding.of("banner-leak", "x", location=Location("out/main.cf", 3))) == ("out/main.cf", 3)
    assert artifact_for(rel, Finding.of("banner-leak", "x")) == ("out", 1)
    odd = Finding.of("banner-leak", "x", location=Location("c:weird dir/main.cf", 7))
    assert artifact_for(rel, odd) == ("c%3Aweird%20dir/main.cf", 7)
    host = TargetResult(target="gw1", vantage="host")
    found = Finding.of("queue-permissions", "x", location=Location("/var/spool/postfix/../maildrop", 4))
    assert artifact_for(host, found) == ("hardener/host/gw1/var/spool/postfix/maildrop", 4)


def test_fingerprints_stable_across_reply_wording_and_distinct_across_targets() -> None:
    def fp(target: str, evidence: str) -> str:
        t = TargetResult(target=target, vantage="network")
        t.add(Finding.of("open-relay", evidence))
        return sarif(Report(targets=[t]))["runs"][0]["results"][0]["partialFingerprints"][FINGERPRINT_KEY]

    first = fp("127.0.0.2:2525", "RCPT TO:<a%b@[127.0.0.2]> -> 250 2.1.5 Ok")
    assert first == fp("127.0.0.2:2525", "RCPT TO:<a%b@[127.0.0.2]> -> 250 2.1.5 Recipient ok (queue 4F2)")
    assert first != fp("127.0.0.3:2525", "RCPT TO:<a%b@[127.0.0.2]> -> 250 2.1.5 Ok")
    assert first != fp("127.0.0.2:2525", "RCPT TO:<a@b> -> 250 2.1.5 Ok")
    assert evidence_kind("smtpd_banner = $myhostname ESMTP Postfix 3.7.11") == "smtpd_banner"
    assert evidence_kind("220 mx ESMTP Postfix 3.7.11") == "mx ESMTP Postfix .."


def test_incomplete_checks_become_tool_notifications() -> None:
    invocation = sarif(sample_report())["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    [note] = [n for n in invocation["toolExecutionNotifications"] if n["level"] == "error"]
    assert "tls-weak-protocol" in note["message"]["text"]


def test_drift_maps_to_baseline_state() -> None:
    results = sarif(sample_report())["runs"][0]["results"]
    vrfy = [r for r in results if r["ruleId"] == "HRD-ENUM-001"][0]
    assert vrfy["baselineState"] == "new"
    assert vrfy["properties"]["severity"] == Severity.LOW.label
