"""The JSON format is exactly Report.to_dict() (DESIGN.md schema 1), sorted and stable."""

from __future__ import annotations

import json

from hardener import __version__
from hardener.report.output import render_report
from tests.report.sample import sample_report


def test_json_is_the_model_dict() -> None:
    report = sample_report()
    text = render_report(report, "json")
    data = json.loads(text)
    assert data == report.to_dict()
    assert data["schema"] == 1
    assert data["tool"] == {"name": "hardener", "version": __version__}
    assert data["summary"] == {"critical": 2, "high": 0, "medium": 3, "low": 2, "info": 0}


def test_json_keys_of_design_md_are_present() -> None:
    data = json.loads(render_report(sample_report(), "json"))
    target = data["targets"][1]
    assert {"target", "vantage", "status", "banner", "findings"} <= set(target)
    assert target["status"] == "incomplete"
    finding = data["targets"][0]["findings"][0]
    assert set(finding) >= {"control", "check", "severity", "title", "evidence", "remediation", "location"}
    assert finding["location"] == {"file": "/etc/postfix/main.cf", "line": 3}


def test_json_text_has_sorted_keys_and_two_space_indent() -> None:
    text = render_report(sample_report(), "json")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
