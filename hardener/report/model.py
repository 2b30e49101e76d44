"""The result model every command reports through.

A Report holds one TargetResult per thing checked (a config file set, an SMTP server, a host). Each
TargetResult lists the findings and, per check, whether it ran to completion, so a report always
says what was checked and what was not. Renderers (hardener.report.formats) only read this model;
exit codes are computed here, from findings and statuses, never by a renderer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hardener import __version__
from hardener.controls import Control, Severity, by_slug
from hardener.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Location:
    """Where a finding comes from: a file and line (config/host vantage)."""

    file: str
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line}


@dataclass
class Finding:
    """One failed control on one target, with the evidence that shows it."""

    control: Control
    evidence: str
    location: Location | None = None
    severity: Severity | None = None  # None: the catalog's severity
    detail: str = ""                  # check-specific explanation (e.g. what a setting does)
    confirmed: bool | None = None     # open-relay: True when a canary was delivered
    drift: str | None = None          # "new" / "open" when compared with an earlier scan

    @classmethod
    def of(cls, slug: str, evidence: str, **kwargs: Any) -> "Finding":
        """A finding for the control checked by `slug` (KeyError if the catalog has no such slug)."""
        return cls(control=by_slug(slug), evidence=evidence, **kwargs)

    @property
    def effective_severity(self) -> Severity:
        return self.severity if self.severity is not None else self.control.severity

    @property
    def check(self) -> str:
        return self.control.slug

    def to_dict(self) -> dict[str, Any]:
        """The finding as in DESIGN.md's JSON report (stable keys)."""
        out: dict[str, Any] = {
            "control": self.control.id,
            "check": self.control.slug,
            "severity": self.effective_severity.label,
            "title": self.control.title,
            "evidence": self.evidence,
            "remediation": self.control.remediation,
            "location": self.location.to_dict() if self.location else None,
        }
        if self.detail:
            out["detail"] = self.detail
        if self.confirmed is not None:
            out["confirmed"] = self.confirmed
        if self.drift is not None:
            out["drift"] = self.drift
        return out


class CheckStatus(str, Enum):
    """How one check ended on one target."""

    PASSED = "passed"        # ran to completion, nothing found
    FAILED = "failed"        # ran to completion, findings
    SKIPPED = "skipped"      # not applicable or not requested (e.g. smuggling without --intrusive)
    ERROR = "error"          # could not finish (timeout, disconnect): makes the target incomplete


@dataclass
class CheckResult:
    """The outcome of one check on one target."""

    check: str
    status: CheckStatus
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "status": self.status.value}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class TargetResult:
    """Everything found on one target from one vantage."""

    target: str
    vantage: str                      # "config", "network" or "host"
    findings: list[Finding] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    banner: str | None = None
    error: str | None = None          # why the target is incomplete, if it is
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """'complete', or 'incomplete' when an error stopped the target or any check."""
        if self.error or any(c.status is CheckStatus.ERROR for c in self.checks):
            return "incomplete"
        return "complete"

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def record(self, check: str, status: CheckStatus, detail: str = "") -> None:
        """Record how a check ended (replacing an earlier record of the same check)."""
        self.checks = [c for c in self.checks if c.check != check]
        self.checks.append(CheckResult(check, status, detail))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "vantage": self.vantage,
            "status": self.status,
            "banner": self.banner,
            "findings": [f.to_dict() for f in self.findings],
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.error:
            out["error"] = self.error
        if self.suppressed:
            out["suppressed"] = self.suppressed
        if self.resolved:
            out["resolved"] = self.resolved
        return out


@dataclass
class Report:
    """A whole run: every target's result, the summary and the exit code."""

    targets: list[TargetResult] = field(default_factory=list)
    command: str = ""
    notes: list[str] = field(default_factory=list)  # run-level remarks (expired suppressions, MX notes)

    def all_findings(self) -> list[Finding]:
        return [f for t in self.targets for f in t.findings]

    def summary(self) -> dict[str, int]:
        """Count of findings per severity, highest first (all five keys always present)."""
        counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
        for f in self.all_findings():
            counts[f.effective_severity.label] += 1
        return counts

    def exit_code(self, fail_on: Severity = Severity.HIGH) -> int:
        """DESIGN.md: 1 if a finding is at or above fail_on, else 3 if a target is incomplete, else 0."""
        if any(f.effective_severity >= fail_on for f in self.all_findings()):
            return EXIT_FINDINGS
        if any(t.status == "incomplete" for t in self.targets):
            return EXIT_INCOMPLETE
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON report (schema 1; "notes" was added later and is always present)."""
        return {
            "schema": SCHEMA_VERSION,
            "tool": {"name": "hardener", "version": __version__},
            "targets": [t.to_dict() for t in self.targets],
            "summary": self.summary(),
            "notes": list(self.notes),
        }
