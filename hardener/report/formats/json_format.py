"""The JSON report: exactly Report.to_dict() (schema 1, DESIGN.md), keys sorted, indent 2."""

from __future__ import annotations

import json

from hardener.report.model import Report


def render(report: Report) -> str:
    """The report as stable JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
