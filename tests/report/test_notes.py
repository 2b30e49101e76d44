"""Report.notes (run-level remarks such as an expired baseline suppression) appear in every format."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from hardener.report.output import FORMATS, render_report
from tests.report.sample import clean_report, sample_report
from tests.report.sarif_schema import sarif_errors

NOTE = "baseline.yaml:4: suppression of HRD-BANNER-001 on * expired on 2026-01-31"


def with_note(note: str = NOTE):
    report = clean_report()
    report.notes.append(note)
    return report


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_shows_the_note(fmt: str) -> None:
    text = render_report(with_note(), fmt)
    assert "expired on 2026-01-31" in text


@pytest.mark.parametrize("fmt", ["table", "markdown", "junit"])
def test_no_notes_no_notes_section(fmt: str) -> None:
    text = render_report(clean_report(), fmt)
    assert "Notes" not in text and "system-out" not in text


def test_json_notes_list_always_present() -> None:
    assert json.loads(render_report(clean_report(), "json"))["notes"] == []
    data = json.loads(render_report(with_note(), "json"))
    assert data["notes"] == [NOTE] and data["schema"] == 1


def test_sarif_note_is_a_tool_execution_notification_and_valid() -> None:
    log = json.loads(render_report(sample_report(), "sarif"))
    assert sarif_errors(log) == []
    invocation = log["runs"][0]["invocations"][0]
    notes = [n for n in invocation["toolExecutionNotifications"] if n["level"] == "note"]
    assert len(notes) == 1 and "expired on 2026-01-31" in notes[0]["message"]["text"]
    assert invocation["executionSuccessful"] is False  # still decided by the targets, not the notes


def test_junit_note_in_each_suites_system_out() -> None:
    root = ET.fromstring(render_report(sample_report(), "junit"))
    outs = [suite.findtext("system-out") for suite in root.iter("testsuite")]
    assert len(outs) == 2 and all("expired on 2026-01-31" in out for out in outs)


@pytest.mark.parametrize("fmt", ["table", "markdown", "junit"])
def test_control_characters_in_notes_are_escaped(fmt: str) -> None:
    text = render_report(with_note("MX mx\x1b[31m.example.test has no A/AAAA record"), fmt)
    assert "\x1b" not in text and "\\x1b" in text
