"""Markdown for people reading a CI job summary or a pull-request comment.

A heading per target, a findings table (most severe first), what could not be checked, the run's
notes and the summary. Evidence and banners come from untrusted servers and files: they are shown as code spans
(literal text: no HTML, links or autolinks) with '|' escaped, and other text is escaped, so nothing
can add markup or break the table.
"""

from __future__ import annotations

from hardener.report.formats._text import location_text, printable, sorted_findings, summary_text
from hardener.report.model import CheckStatus, Report, TargetResult

_MD_SPECIAL = set("\\`*_[]|~<>&#!")


def render(report: Report) -> str:
    """The report as GitHub-flavoured Markdown."""
    lines = ["# hardener report", ""]
    for target in report.targets:
        lines += _target(target)
    if report.notes:
        lines += ["## Notes", ""]
        lines += [f"- {md(note)}" for note in report.notes]
        lines.append("")
    lines += [f"**Summary:** {md(summary_text(report))}", ""]
    return "\n".join(lines)


def _target(target: TargetResult) -> list[str]:
    lines = [f"## {md(target.target)} ({md(target.vantage)}, {target.status})", ""]
    if target.banner is not None:
        lines += [f"Banner: {code(target.banner)}", ""]
    if target.error:
        lines += [f"**Error:** {md(target.error)}", ""]
    findings = sorted_findings(target)
    if findings:
        lines += ["| Severity | Control | Check | Finding | Evidence | Location |",
                  "|---|---|---|---|---|---|"]
        for f in findings:
            title = md(f.control.title) + (f" ({md(f.detail)})" if f.detail else "")
            if f.drift:
                title += f" *{md(f.drift)}*"
            lines.append(f"| {f.effective_severity.label} | {f.control.id} | {md(f.check)} | {title} | "
                         f"{code(f.evidence)} | {code(location_text(f.location))} |")
        lines.append("")
        lines += ["Remediation:", ""]
        seen: set[str] = set()
        for f in findings:
            if f.control.id not in seen:
                seen.add(f.control.id)
                lines.append(f"- **{f.control.id}** ({md(f.check)}): {md(f.control.remediation)}")
        lines.append("")
    else:
        lines += ["No findings.", ""]
    unfinished = [c for c in target.checks if c.status is CheckStatus.ERROR]
    if unfinished:
        lines += ["Checks not completed:", ""]
        lines += [f"- {md(c.check)}" + (f": {md(c.detail)}" if c.detail else "") for c in unfinished]
        lines.append("")
    skipped = [c for c in target.checks if c.status is CheckStatus.SKIPPED]
    if skipped:
        lines += ["Skipped: " + ", ".join(
            md(c.check) + (f" ({md(c.detail)})" if c.detail else "") for c in skipped), ""]
    return lines


def code(text: str) -> str:
    """`text` as a Markdown code span: shown literally (no HTML, links or autolinks), safe in a table cell."""
    if not text:
        return ""
    body = printable(text).replace("|", "\\|")
    longest = run = 0
    for ch in body:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def md(text: str) -> str:
    """`text` as inert Markdown: control characters escaped, HTML and markup characters neutralised."""
    out = []
    for ch in printable(text):
        if ch in "<>&":
            out.append({"<": "&lt;", ">": "&gt;", "&": "&amp;"}[ch])
        elif ch in _MD_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)
