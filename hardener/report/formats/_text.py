"""Text helpers shared by the human-readable formats (table, markdown, junit)."""

from __future__ import annotations

import unicodedata

from hardener.controls import Severity
from hardener.report.model import Finding, Location, Report, TargetResult


def printable(text: str) -> str:
    """`text` with control characters shown as escapes (\\r, \\n, \\x1b ...).

    Evidence and banners come from untrusted servers; a raw ESC or CR could rewrite the reader's
    terminal or CI log, and most control characters are not even valid in XML.
    """
    out = []
    for ch in text:
        if ch in "\r\n\t":
            out.append({"\r": "\\r", "\n": "\\n", "\t": "\\t"}[ch])
        elif unicodedata.category(ch) in ("Cc", "Cs") or ch in "\ufffe\uffff":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def sorted_findings(target: TargetResult) -> list[Finding]:
    """The target's findings, most severe first; ties by control id, then in reported order."""
    return sorted(target.findings, key=lambda f: (-int(f.effective_severity), f.control.id))


def location_text(location: Location | None) -> str:
    """'file:line', 'file', or '' when the finding has no location."""
    if location is None:
        return ""
    return f"{location.file}:{location.line}" if location.line is not None else location.file


def summary_text(report: Report) -> str:
    """One line: finding counts per severity, targets, and how many are incomplete."""
    counts = report.summary()
    total = sum(counts.values())
    per = ", ".join(f"{n} {label}" for label, n in counts.items())
    targets = len(report.targets)
    incomplete = sum(1 for t in report.targets if t.status == "incomplete")
    line = (f"{total} finding{'s' if total != 1 else ''} ({per}) "
            f"in {targets} target{'s' if targets != 1 else ''}")
    if incomplete:
        line += f"; {incomplete} incomplete"
    return line


SEVERITY_ORDER = tuple(sorted(Severity, reverse=True))
