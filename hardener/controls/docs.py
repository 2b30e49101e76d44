"""The control catalog as documents: JSON data, Markdown (docs/controls.md) and rich tables.

`python -m hardener.controls.docs` prints docs/controls.md (`make docs` writes it); a test checks
the committed file equals this output, so the page never drifts from the catalog.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from hardener.controls.catalog import CATALOG, Control

DOC_HEADER = (
    "<!-- Generated from hardener/controls/catalog.py by `python -m hardener.controls.docs` "
    "(make docs). Do not edit by hand. -->"
)


def control_to_dict(control: Control) -> dict[str, Any]:
    """One control as plain data (the JSON of `hardener controls show`)."""
    return {
        "id": control.id,
        "slug": control.slug,
        "title": control.title,
        "severity": control.severity.label,
        "security_severity": control.security_severity,
        "vantages": [v.value for v in control.vantages],
        "rationale": control.rationale,
        "remediation": control.remediation,
        "parameters": list(control.parameters),
        "references": [{"source": r.source, "ident": r.ident, "url": r.url} for r in control.references],
        "rules": {v.value: control.rules[v] for v in control.vantages if v in control.rules},
        "blind_spots": [{"key": b.key, "vantage": b.vantage.value, "reason": b.reason}
                        for b in control.blind_spots],
    }


def controls_json(controls: Iterable[Control]) -> str:
    """`hardener controls list --format json`: every control, stable key order."""
    data = {"schema": 1, "controls": [control_to_dict(c) for c in controls]}
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def control_json(control: Control) -> str:
    """`hardener controls show ID --format json`."""
    return json.dumps(control_to_dict(control), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _inline(text: str) -> str:
    """Catalog text for Markdown: '<LF>' must not read as an HTML tag, '|' must not split a cell."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _anchor(control: Control) -> str:
    """GitHub's heading anchor for `## ID: slug`."""
    return f"{control.id}-{control.slug}".lower()


def controls_markdown_table(controls: Iterable[Control]) -> str:
    """The summary table: id, check, severity, vantages, title."""
    lines = ["| Id | Check | Severity | Vantage | Title |", "|---|---|---|---|---|"]
    for c in controls:
        vantages = ", ".join(v.value for v in c.vantages)
        lines.append(f"| [{c.id}](#{_anchor(c)}) | `{c.slug}` | {c.severity.label} | {vantages} | "
                     f"{_inline(c.title)} |")
    return "\n".join(lines) + "\n"


def control_markdown(control: Control, level: int = 2) -> str:
    """One control as a Markdown section."""
    c = control
    lines = [f"{'#' * level} {c.id}: {c.slug}", "", f"**{_inline(c.title)}**", "",
             f"- Severity: {c.severity.label} (SARIF security-severity {c.security_severity})",
             f"- Checked from: {', '.join(v.value for v in c.vantages)}"]
    if c.parameters:
        lines.append("- Parameters: " + ", ".join(f"`{p}`" for p in c.parameters))
    lines += ["", f"Why: {_inline(c.rationale)}", "", f"Fix: {_inline(c.remediation)}", ""]
    if c.rules:
        lines += ["Rule per vantage:", ""]
        for vantage in c.vantages:
            if vantage in c.rules:
                lines.append(f"- {vantage.value} (`{vantage.command}`): {_inline(c.rules[vantage])}")
        lines.append("")
    if c.blind_spots:
        lines += ["What a vantage cannot know:", ""]
        for spot in c.blind_spots:
            lines.append(f"- {spot.vantage.value}, `{spot.key}`: {_inline(spot.reason)}")
        lines.append("")
    if c.references:
        lines += ["References:", ""]
        for ref in c.references:
            lines.append(f"- [{_inline(str(ref))}]({ref.url})" if ref.url else f"- {_inline(str(ref))}")
        lines.append("")
    return "\n".join(lines)


def catalog_markdown(controls: Iterable[Control] = CATALOG) -> str:
    """docs/controls.md: the summary table, then one section per control."""
    controls = list(controls)
    parts = [
        DOC_HEADER, "",
        "# Control catalog", "",
        "Every finding hardener reports names one of these controls. Ids and check slugs are stable; "
        "new controls get new ids. `hardener controls list` and `hardener controls show ID` print the "
        "same data; `--format json` gives it to scripts.", "",
        "Severity bands: critical and high findings fail a run by default (`--fail-on high`); in SARIF "
        "they are `error`, medium is `warning`, low and info are `note`.", "",
        "One verdict per control: where two vantages judge the same control, `hardener lint` of a "
        "Postfix's main.cf and `hardener audit` of that Postfix running report the same finding, or "
        "the control's \"What a vantage cannot know\" names the reason one of them cannot. Each "
        "control states the rule each vantage follows; tests/test_vantage_agreement.py checks the "
        "two vantages against real Postfix configurations.", "",
        controls_markdown_table(controls),
    ]
    parts += [control_markdown(c) for c in controls]
    return "\n".join(parts).rstrip("\n") + "\n"


def controls_table(controls: Iterable[Control], *, color: bool) -> Table:
    """`hardener controls list` for people: one row per control."""
    table = Table(box=box.SIMPLE_HEAD if color else box.ASCII2, show_edge=False, pad_edge=False,
                  header_style="bold" if color else "")
    for name in ("id", "check", "severity", "vantage"):
        table.add_column(name, no_wrap=True)
    table.add_column("title", ratio=1)
    for c in controls:
        table.add_row(c.id, c.slug, c.severity.label, ",".join(v.value for v in c.vantages), c.title)
    return table


def control_detail(control: Control) -> Group:
    """`hardener controls show ID` for people: every field of one control."""
    c = control
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(ratio=1)
    rows = [("id", c.id), ("check", c.slug), ("title", c.title),
            ("severity", f"{c.severity.label} (security-severity {c.security_severity})"),
            ("vantage", ", ".join(v.value for v in c.vantages)),
            ("parameters", ", ".join(c.parameters)), ("why", c.rationale), ("fix", c.remediation)]
    rows += [(f"rule ({v.value})", c.rules[v]) for v in c.vantages if v in c.rules]
    rows += [(f"cannot know ({b.vantage.value})", f"{b.key}: {b.reason}") for b in c.blind_spots]
    rows += [("references", "\n".join(f"{r} {r.url}".strip() for r in c.references))]
    for label, value in rows:
        if value:
            grid.add_row(label, Text(value))
    return Group(grid)


def main() -> int:
    """Print docs/controls.md to standard output."""
    sys.stdout.write(catalog_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
