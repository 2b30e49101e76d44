"""Markdown for CI job summaries: heading per target, findings table, inert untrusted text."""

from __future__ import annotations

import re

from hardener.report.formats.markdown import code, md
from hardener.report.model import CheckStatus, Finding, Report, TargetResult
from hardener.report.output import render_report
from tests.report.sample import clean_report, sample_report


def test_headings_table_and_summary() -> None:
    text = render_report(sample_report(), "markdown")
    assert "## /etc/postfix (config, complete)" in text
    assert "## 127.0.0.2:2525 (network, incomplete)" in text
    assert text.count("| Severity | Control | Check | Finding | Evidence | Location |") == 2
    rows = [line for line in text.splitlines() if line.startswith("| ") and "HRD-" in line]
    assert len(rows) == 7
    assert all(row.count(" | ") == 5 for row in rows)  # no cell broke the table
    assert rows[0].startswith("| critical | HRD-RELAY-002 |")
    assert "- tls-weak-protocol: timeout after 10s during STARTTLS" in text
    assert text.rstrip().endswith("in 2 targets; 1 incomplete")


def test_untrusted_text_cannot_inject_html_links_or_cells() -> None:
    target = TargetResult(target="127.0.0.5:25", vantage="network", banner="<img src=x onerror=alert(1)>")
    target.add(Finding.of("banner-leak", "220 a | b [click](http://evil) <script>x</script> `code` \n## head"))
    target.record("banner-leak", CheckStatus.FAILED)
    text = render_report(Report(targets=[target]), "markdown")
    outside_code = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)
    assert "<" not in outside_code and "http" not in outside_code  # only ever shown literally
    assert "Banner: `<img src=x onerror=alert(1)>`" in text
    [row] = [line for line in text.splitlines() if "HRD-BANNER-001" in line and line.startswith("|")]
    assert row.count(" | ") == 5
    assert "\n## head" not in text
    assert md("a|b") == "a\\|b"
    assert code("a`b|c") == "``a`b\\|c``"
    assert code("`x") == "`` `x ``"


def test_clean_report() -> None:
    assert "No findings." in render_report(clean_report(), "markdown")
