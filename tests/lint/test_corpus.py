"""Every corpus case produces exactly the findings its expected.yaml lists (file, line, severity).

A case is a directory with main.cf (master.cf, aliases and tables beside it as needed) and
expected.yaml: `findings` (check, at FILE[:LINE], optional severity and evidence substring),
`info` (parameters with a surprising-setting explanation), `skipped` (checks recorded as skipped),
`absent` (checks that must not fire) and `exact` (default true: no other finding above info).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hardener.controls import Severity
from hardener.lint.runner import config_slugs, lint_path
from hardener.report.model import CheckStatus, Finding
from tests.lint.conftest import CORPUS

CASES = sorted(d.name for d in CORPUS.iterdir() if (d / "expected.yaml").is_file())


def _at(finding: Finding) -> str:
    assert finding.location is not None, f"{finding.check} has no location"
    name = Path(finding.location.file).name
    return f"{name}:{finding.location.line}" if finding.location.line else name


def _matches(finding: Finding, want: dict) -> bool:
    return (finding.check == want["check"] and _at(finding) == want["at"]
            and ("severity" not in want or finding.effective_severity.label == want["severity"])
            and want.get("evidence", "") in finding.evidence)


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str, corpus_case) -> None:
    expected = yaml.safe_load((CORPUS / case / "expected.yaml").read_text())
    result = lint_path(corpus_case(case))
    assert result.vantage == "config"
    assert {c.check for c in result.checks} == set(config_slugs())
    real = [f for f in result.findings if f.effective_severity > Severity.INFO]
    for want in expected.get("findings") or []:
        assert any(_matches(f, want) for f in real), (
            f"missing {want}; got " + "; ".join(f"{f.check} {_at(f)}: {f.evidence}" for f in real))
    if expected.get("exact", True):
        got = sorted((f.check, _at(f)) for f in real)
        wanted = sorted((w["check"], w["at"]) for w in expected.get("findings") or [])
        assert got == wanted
    for slug in expected.get("absent") or []:
        assert not [f for f in real if f.check == slug], slug
    infos = [f.evidence for f in result.findings if f.effective_severity == Severity.INFO]
    for name in expected.get("info") or []:
        assert any(e.startswith(f"{name} ") for e in infos), (name, infos)
    skipped = {c.check for c in result.checks if c.status is CheckStatus.SKIPPED}
    assert set(expected.get("skipped") or []) <= skipped
    for finding in result.findings:
        assert finding.evidence and "\n" not in finding.evidence
