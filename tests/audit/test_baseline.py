"""--baseline: suppress accepted findings by control and target, report expired suppressions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hardener.audit.baseline import apply_baseline, load_baseline
from hardener.errors import InputError
from hardener.report.model import Finding, Report, TargetResult

TODAY = dt.date(2026, 6, 1)


def _report() -> Report:
    a = TargetResult("127.0.0.2:25", "network")
    a.add(Finding.of("banner-leak", evidence="greeting: Postfix"))
    a.add(Finding.of("open-relay", evidence="RCPT accepted"))
    b = TargetResult("127.0.0.3:25", "network")
    b.add(Finding.of("banner-leak", evidence="greeting: Exim"))
    return Report(targets=[a, b])


def test_suppress_by_control_and_check_with_target(tmp_path: Path) -> None:
    path = tmp_path / "baseline.yaml"
    path.write_text(
        "- control: HRD-BANNER-001\n  target: 127.0.0.2:25\n  reason: legacy appliance\n"
        "  expires: 2026-12-31\n"
        "- check: open-relay\n  target: 127.0.0.2\n  reason: lab relay\n")
    report = _report()
    notes = apply_baseline(report, load_baseline(path), today=TODAY)
    assert notes == []
    a, b = report.targets
    assert a.findings == []
    assert [(s["check"], s["reason"]) for s in a.suppressed] == [("banner-leak", "legacy appliance"),
                                                                ("open-relay", "lab relay")]
    assert [f.check for f in b.findings] == ["banner-leak"]   # other target untouched
    assert report.exit_code() == 0


def test_expired_suppression_is_reported_and_suppresses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "baseline.yaml"
    path.write_text("- control: HRD-RELAY-001\n  target: '*'\n  reason: until migration\n"
                    "  expires: 2026-01-31\n")
    report = _report()
    notes = apply_baseline(report, load_baseline(path), source=str(path), today=TODAY)
    assert [f.check for f in report.targets[0].findings] == ["banner-leak", "open-relay"]
    assert report.targets[0].findings[1].detail == (
        "baseline suppression expired on 2026-01-31 (reason was: until migration)")
    assert report.exit_code() == 1
    assert len(notes) == 1 and "expired on 2026-01-31" in notes[0] and f"{path}:1" in notes[0]
    assert report.notes == notes


@pytest.mark.parametrize("text, expected", [
    ("control: HRD-RELAY-001\n", ":1: expected a list of suppressions"),
    ("- control: HRD-NOPE-001\n", ":1: control: unknown control or check 'HRD-NOPE-001'"),
    ("- reason: x\n", ":1: control: each entry needs a control id or a check slug"),
    ("- check: banner-leak\n  expires: next week\n", ":1: expires: 'next week' is not a date"),
    ("- check: banner-leak\n  colour: red\n", ":1: colour: unknown key"),
    ("- check: banner-leak\n- [\n", ": invalid YAML"),
])
def test_bad_baseline_is_one_line_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "baseline.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_baseline(path)
    line = err.value.one_line()
    assert line.startswith(str(path)) and expected in line and "\n" not in line


@pytest.mark.parametrize("pattern, matches", [
    ("mx1.example.test", True), ("127.0.0.5", True), ("127.0.0.5:25", True),
    ("mx1.example.test:25", True), ("mx1.example.test[127.0.0.5]:25", True), ("*", True),
    ("mx1.example.test:26", False), ("mx2.example.test", False), ("127.0.0.6", False),
])
def test_mx_target_matches_by_name_or_address(pattern: str, matches: bool) -> None:
    from hardener.audit.baseline import target_matches

    assert target_matches(pattern, "mx1.example.test[127.0.0.5]:25") is matches


def test_ipv6_mx_target_matches_bracketed_address() -> None:
    from hardener.audit.baseline import target_matches

    assert target_matches("[::1]:25", "mx2.example.test[::1]:25")
    assert target_matches("::1", "mx2.example.test[::1]:25")
