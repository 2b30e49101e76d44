"""The human-readable report (rich): coloured on a terminal, plain ASCII text otherwise.

Per target: a header (target, vantage, status, banner), the findings most severe first (severity,
control id, check, title, then evidence, location and remediation), the checks that did not
complete; then the run's notes (e.g. expired baseline suppressions) and one summary line for the
whole report.
"""

from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from hardener.controls import Severity
from hardener.report.formats._text import location_text, printable, sorted_findings, summary_text
from hardener.report.model import CheckStatus, Finding, Report, TargetResult

SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def render(report: Report, *, color: bool = False, width: int = 100) -> str:
    """The report as text `width` columns wide; ANSI colours and box lines only if `color`."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False,
                      emoji=False, markup=False, legacy_windows=False, soft_wrap=False)
    for index, target in enumerate(report.targets):
        if index:
            console.print()
        console.print(_target_block(target, color))
    if report.targets:
        console.print()
    if report.notes:
        console.print(Text("Notes:", style="bold"))
        console.print(_notes_grid(report.notes))
        console.print()
    console.print(Text.assemble(("Summary: ", "bold"), summary_text(report)))
    text = buffer.getvalue()
    if not color:  # rich pads cells to the column width; trailing blanks only clutter logs and diffs
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    return text


def _notes_grid(notes: list[str]) -> Table:
    """One bullet per note, wrapped lines indented under the text."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    for note in notes:
        grid.add_row(" -", Text(printable(note)))
    return grid


def _target_block(target: TargetResult, color: bool) -> Group:
    parts: list = []
    header = Text()
    header.append(printable(target.target), style="bold")
    header.append(f"  vantage: {target.vantage}  status: ")
    header.append(target.status, style="green" if target.status == "complete" else "bold red")
    parts.append(header)
    if target.banner is not None:
        parts.append(Text.assemble("banner: ", printable(target.banner)))
    if target.error:
        parts.append(Text.assemble(("error: ", "bold red"), printable(target.error)))
    findings = sorted_findings(target)
    if findings:
        parts.append(_findings_table(findings, color))
    else:
        parts.append(Text("no findings", style="green"))
    unfinished = [c for c in target.checks if c.status is CheckStatus.ERROR]
    if unfinished:
        parts.append(Text("checks not completed:", style="bold red"))
        for check in unfinished:
            line = Text(f"  {check.check}")
            if check.detail:
                line.append(f": {printable(check.detail)}")
            parts.append(line)
    skipped = [c for c in target.checks if c.status is CheckStatus.SKIPPED]
    if skipped:
        parts.append(Text("skipped: " + ", ".join(
            f"{c.check} ({printable(c.detail)})" if c.detail else c.check for c in skipped), style="dim"))
    return Group(*parts)


def _findings_table(findings: list[Finding], color: bool) -> Table:
    """One row per finding: severity, control, check, and a cell with title, evidence, location, fix."""
    table = Table(box=box.SIMPLE_HEAD if color else box.ASCII2, show_edge=False, expand=False,
                  show_lines=not color, pad_edge=False, header_style="bold" if color else "")
    table.add_column("severity", no_wrap=True)
    table.add_column("control", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("finding", ratio=1, overflow="fold")
    for finding in findings:
        severity = finding.effective_severity
        table.add_row(Text(severity.label.upper(), style=SEVERITY_STYLE[severity]),
                      finding.control.id, finding.check, _finding_cell(finding))
    return table


def _finding_cell(finding: Finding) -> Text:
    cell = Text()
    cell.append(finding.control.title, style="bold")
    fields = [("evidence", finding.evidence), ("location", location_text(finding.location)),
              ("detail", finding.detail), ("fix", finding.control.remediation)]
    if finding.drift:
        fields.insert(0, ("drift", finding.drift))
    if finding.confirmed is not None:
        fields.insert(1, ("confirmed", "yes" if finding.confirmed else "no"))
    for label, value in fields:
        if value:
            cell.append(f"\n{label}: ", style="dim")
            cell.append(printable(value))
    return cell
