"""One Finding/Report model and every output format (table, json, sarif, junit, markdown)."""

from hardener.report.model import CheckResult, CheckStatus, Finding, Location, Report, TargetResult

__all__ = ["CheckResult", "CheckStatus", "Finding", "Location", "Report", "TargetResult"]
