"""SARIF 2.1.0 output, shaped for GitHub code scanning.

One run; tool.driver lists every catalog control as a rule (ruleId = control id, name = slug,
security-severity from the catalog), so ruleIndex is stable whatever a run found.

Locations. GitHub code scanning shows a result only when it has a physical location whose
artifactLocation.uri is a file path: a relative path (from the repository root) or a file:// URI.
A URI such as smtp://127.0.0.2:2525 makes the upload fail ("unrecognized SARIF location URI
scheme"), and a result without a region has no line to annotate. So:

- config findings point at the file and line they came from (relative paths stay relative, so
  `hardener lint out/` run from the repository root links straight to out/main.cf; absolute paths
  become file:// URIs, which GitHub maps to repository files when they lie under the checkout);
- network and host findings point at a placeholder path `hardener/<vantage>/<target>` (the target
  with every character outside [A-Za-z0-9._-] replaced by '_', e.g. hardener/network/127.0.0.2_2525),
  line 1, or, for a host finding with a file, `hardener/host/<target>/<that file's path>` at its line.
  The real target (e.g. smtp://127.0.0.2:2525) goes into a logicalLocation and the result's
  properties, so nothing is lost and the upload stays valid.

partialFingerprints["hardener/v1"] hashes control id, vantage, target, location file and the kind
of evidence (the probe or parameter, not the reply text), so an alert keeps its identity across
runs while the server's wording or the file's line numbers change.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import metadata
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from hardener import __version__
from hardener.controls import CATALOG, Control, Severity
from hardener.report.model import CheckStatus, Finding, Report, TargetResult

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FALLBACK_INFORMATION_URI = "https://pypi.org/project/hardener/"
FINGERPRINT_KEY = "hardener/v1"

_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.INFO: "note"}
_RULE_INDEX = {control.id: index for index, control in enumerate(CATALOG)}
_UNSAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._-]")
_SCHEME_PREFIX = {"network": "smtp://", "host": "ssh://"}


def render(report: Report) -> str:
    """The report as a SARIF 2.1.0 log (JSON text, sorted keys, trailing newline)."""
    return json.dumps(to_sarif(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def to_sarif(report: Report) -> dict[str, Any]:
    """The SARIF log as a dict."""
    results = [_result(target, finding) for target in report.targets for finding in target.findings]
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "hardener",
            "version": __version__,
            "semanticVersion": __version__,
            "informationUri": information_uri(),
            "rules": [_rule(control) for control in CATALOG],
        }},
        "invocations": [_invocation(report)],
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    if report.command:
        # lets GitHub keep `hardener lint` and `hardener audit` uploads of one repository apart
        run["automationDetails"] = {"id": f"hardener/{report.command}/"}
    return {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def information_uri() -> str:
    """The project's home page from the installed package metadata, else its PyPI page."""
    try:
        meta = metadata.metadata("hardener")
    except metadata.PackageNotFoundError:
        return FALLBACK_INFORMATION_URI
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository") and url.strip():
            return url.strip()
    return meta.get("Home-page") or FALLBACK_INFORMATION_URI


def _rule(control: Control) -> dict[str, Any]:
    references = "\n".join(
        f"- [{ref}]({ref.url})" if ref.url else f"- {ref}" for ref in control.references)
    markdown = f"**Fix:** {control.remediation}\n\n**Why:** {control.rationale}"
    if references:
        markdown += f"\n\n**References:**\n{references}"
    rule: dict[str, Any] = {
        "id": control.id,
        "name": control.slug,
        "shortDescription": {"text": control.title},
        "fullDescription": {"text": control.rationale},
        "help": {"text": control.remediation, "markdown": markdown},
        "defaultConfiguration": {"level": _LEVEL[control.severity]},
        "properties": {
            "security-severity": control.security_severity,
            "tags": ["security"],
            "precision": "high",
            "problem.severity": _problem_severity(control.severity),
            "vantages": [v.value for v in control.vantages],
        },
    }
    urls = [ref.url for ref in control.references if ref.url]
    if urls:
        rule["helpUri"] = urls[0]
    return rule


def _problem_severity(severity: Severity) -> str:
    return {"error": "error", "warning": "warning", "note": "recommendation"}[_LEVEL[severity]]


def _result(target: TargetResult, finding: Finding) -> dict[str, Any]:
    control = finding.control
    severity = finding.effective_severity
    text = f"{control.title}: {finding.evidence}" if finding.evidence else control.title
    if finding.detail:
        text += f" ({finding.detail})"
    result: dict[str, Any] = {
        "ruleId": control.id,
        "ruleIndex": _RULE_INDEX[control.id],
        "level": _LEVEL[severity],
        "message": {"text": text},
        "locations": [_location(target, finding)],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(target, finding)},
        "properties": {
            "target": target.target,
            "vantage": target.vantage,
            "check": finding.check,
            "severity": severity.label,
            "security-severity": _security_severity(severity),
        },
    }
    if finding.confirmed is not None:
        result["properties"]["confirmed"] = finding.confirmed
    if finding.drift == "new":
        result["baselineState"] = "new"
    elif finding.drift == "open":
        result["baselineState"] = "unchanged"
    return result


def _security_severity(severity: Severity) -> str:
    """The catalog's score bands, for a finding whose severity differs from its control's."""
    return {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
            Severity.LOW: "3.0", Severity.INFO: "0.0"}[severity]


def _location(target: TargetResult, finding: Finding) -> dict[str, Any]:
    uri, line = artifact_for(target, finding)
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}},
    }
    if target.vantage != "config":
        location["logicalLocations"] = [{
            "name": target.target,
            "fullyQualifiedName": _SCHEME_PREFIX.get(target.vantage, "") + target.target,
            "kind": "resource",
        }]
    return location


def artifact_for(target: TargetResult, finding: Finding) -> tuple[str, int]:
    """The (artifactLocation.uri, startLine) GitHub code scanning accepts for this finding."""
    line = finding.location.line if finding.location and finding.location.line else 1
    if target.vantage == "config":
        path = finding.location.file if finding.location else target.target
        return file_uri(path), max(line, 1)
    uri = f"hardener/{_segment(target.vantage)}/{_segment(target.target)}"
    if finding.location:
        parts = [_segment(p) for p in PurePosixPath(finding.location.file).parts if p not in ("/", "..")]
        uri = "/".join([uri, *parts])
    return uri, max(line, 1)


def file_uri(path: str) -> str:
    """A relative path as a relative URI reference; an absolute one as a file:// URI."""
    posix = PurePosixPath(path)
    if posix.is_absolute():
        return "file://" + quote(str(posix))
    # quote() also encodes ':', so a first segment such as "c:main.cf" cannot read as a URI scheme
    return quote(str(posix))


def _segment(text: str) -> str:
    return _UNSAFE_SEGMENT.sub("_", text) or "_"


def fingerprint(target: TargetResult, finding: Finding) -> str:
    """Stable identity of a finding across runs (see module docstring)."""
    parts = [finding.control.id, target.vantage, target.target,
             finding.location.file if finding.location else "", evidence_kind(finding.evidence)]
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]


def evidence_kind(evidence: str) -> str:
    """The part of the evidence that names what was probed, not what came back.

    'RCPT TO:<x@y> -> 250 2.1.5 Ok' -> 'RCPT TO:<x@y>'; 'smtpd_banner = $myhostname ...' ->
    'smtpd_banner'; anything else is kept with its digits removed (versions, counters).
    """
    for separator in (" -> ", " = "):
        if separator in evidence:
            return " ".join(evidence.split(separator, 1)[0].split())
    return " ".join(re.sub(r"\d+", "", evidence).split())


def _invocation(report: Report) -> dict[str, Any]:
    """Whether every target completed; each check that could not finish becomes an error
    notification, each of the run's notes (e.g. an expired baseline suppression) a note."""
    notifications = []
    for target in report.targets:
        if target.error:
            notifications.append(_notification(target, f"{target.target}: {target.error}"))
        for check in target.checks:
            if check.status is CheckStatus.ERROR:
                text = f"{target.target}: check {check.check} did not complete"
                notifications.append(_notification(target, f"{text}: {check.detail}" if check.detail else text))
    notifications += [{"level": "note", "message": {"text": note}} for note in report.notes]
    invocation: dict[str, Any] = {
        "executionSuccessful": all(t.status == "complete" for t in report.targets),
    }
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return invocation


def _notification(target: TargetResult, text: str) -> dict[str, Any]:
    return {"level": "error", "message": {"text": text},
            "properties": {"target": target.target, "vantage": target.vantage}}
