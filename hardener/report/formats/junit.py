"""JUnit XML: one testsuite per target, one testcase per control checked.

A check that ran and found something is a <failure> listing its findings; a check that could not
finish (CheckStatus.ERROR) is an <error>; a skipped check is <skipped>. A finding whose check was not
recorded still gets a failing testcase, and a target-level error (unreachable, timeout) gets an
<error> testcase of its own, so nothing in the report is dropped. The run's notes (e.g. expired
baseline suppressions) go into each testsuite's <system-out>. CI systems (GitLab, Jenkins,
GitHub test reporters) show these as ordinary test results.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hardener.controls import Control, by_slug
from hardener.report.formats._text import location_text, printable, sorted_findings
from hardener.report.model import CheckResult, CheckStatus, Finding, Report, TargetResult


def render(report: Report) -> str:
    """The report as a JUnit XML document (UTF-8, with declaration, trailing newline)."""
    root = ET.Element("testsuites", name="hardener")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for target in report.targets:
        suite = _suite(target)
        if report.notes:  # <testsuites> cannot hold <system-out>: each suite carries the run's notes
            ET.SubElement(suite, "system-out").text = "\n".join(_clean(n) for n in report.notes)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite(target: TargetResult) -> ET.Element:
    suite = ET.Element("testsuite", name=_clean(f"{target.target} ({target.vantage})"))
    properties = ET.SubElement(suite, "properties")
    for name, value in (("target", target.target), ("vantage", target.vantage),
                        ("status", target.status), ("banner", target.banner)):
        if value is not None:
            ET.SubElement(properties, "property", name=name, value=_clean(value))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    classname = _clean(f"hardener.{target.vantage}.{target.target}")

    if target.error:
        case = ET.SubElement(suite, "testcase", classname=classname, name="target")
        ET.SubElement(case, "error", message=_clean(target.error), type="incomplete").text = _clean(target.error)
        counts["tests"] += 1
        counts["errors"] += 1

    by_check: dict[str, list[Finding]] = {}
    for finding in sorted_findings(target):
        by_check.setdefault(finding.check, []).append(finding)
    checks = list(target.checks)
    recorded = {c.check for c in checks}
    checks += [CheckResult(slug, CheckStatus.FAILED) for slug in by_check if slug not in recorded]

    for check in checks:
        findings = by_check.get(check.check, [])
        case = ET.SubElement(suite, "testcase", classname=classname, name=_case_name(check.check))
        counts["tests"] += 1
        if findings:
            worst = findings[0].effective_severity.label
            message = f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({worst}): {findings[0].control.title}"
            failure = ET.SubElement(case, "failure", message=_clean(message), type=worst)
            failure.text = "\n".join(_finding_text(f) for f in findings)
            counts["failures"] += 1
        elif check.status is CheckStatus.ERROR:
            detail = check.detail or "check did not complete"
            ET.SubElement(case, "error", message=_clean(detail), type="incomplete").text = _clean(detail)
            counts["errors"] += 1
        elif check.status is CheckStatus.SKIPPED:
            ET.SubElement(case, "skipped", message=_clean(check.detail or "skipped"))
            counts["skipped"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    return suite


def _case_name(slug: str) -> str:
    control = _control(slug)
    return f"{control.id} {slug}" if control else _clean(slug)


def _control(slug: str) -> Control | None:
    try:
        return by_slug(slug)
    except KeyError:
        return None


def _finding_text(finding: Finding) -> str:
    lines = [f"[{finding.effective_severity.label}] {finding.control.id} {finding.check}: {finding.control.title}",
             f"  evidence: {finding.evidence}"]
    where = location_text(finding.location)
    if where:
        lines.append(f"  location: {where}")
    if finding.detail:
        lines.append(f"  detail: {finding.detail}")
    lines.append(f"  fix: {finding.control.remediation}")
    return "\n".join(_clean(line) for line in lines)


def _clean(text: str) -> str:
    """Text safe for XML 1.0: control characters (invalid in XML) shown as escapes."""
    return printable(str(text))
