"""docs/controls.md is generated from the catalog and must stay current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hardener.controls import CATALOG
from hardener.controls.docs import catalog_markdown, control_to_dict

REPO = Path(__file__).resolve().parents[2]


def test_docs_controls_md_is_current() -> None:
    committed = (REPO / "docs" / "controls.md").read_text(encoding="utf-8")
    assert committed == catalog_markdown(), "docs/controls.md is stale: run `make docs`"


def test_module_prints_the_page() -> None:
    proc = subprocess.run([sys.executable, "-m", "hardener.controls.docs"], capture_output=True,
                          text=True, timeout=60, check=True)
    assert proc.stdout == catalog_markdown()


def test_page_has_every_control_with_anchor_and_escaped_text() -> None:
    page = catalog_markdown()
    for control in CATALOG:
        assert f"## {control.id}: {control.slug}" in page
        assert f"(#{control.id.lower()}-{control.slug})" in page
        assert control.remediation.replace("<", "&lt;").replace(">", "&gt;") in page
    assert "<LF>" not in page  # would vanish as an HTML tag on GitHub


def test_control_dict_has_every_field() -> None:
    data = control_to_dict(CATALOG[0])
    assert set(data) == {"id", "slug", "title", "severity", "security_severity", "vantages", "rationale",
                         "remediation", "parameters", "references", "rules", "blind_spots"}
