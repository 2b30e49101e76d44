"""Golden outputs: a fixed Report rendered in every format equals the files in tests/report/golden/.

When a renderer changes on purpose, regenerate the files and review the diff:

    HARDENER_REGEN_GOLDEN=1 python -m pytest -q tests/report/test_golden.py
    git diff tests/report/golden/

The tool version and the SARIF informationUri are replaced by placeholders so that a version bump
does not invalidate the files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hardener import __version__
from hardener.report.formats.sarif import information_uri
from hardener.report.output import FORMATS, render_report
from tests.report.sample import sample_report

GOLDEN = Path(__file__).with_name("golden")
SUFFIX = {"table": "txt", "json": "json", "sarif": "sarif", "junit": "xml", "markdown": "md"}


def normalise(text: str) -> str:
    return text.replace(information_uri(), "@INFORMATION_URI@").replace(
        f'"{__version__}"', '"@VERSION@"')


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(fmt: str) -> None:
    path = GOLDEN / f"sample.{SUFFIX[fmt]}"
    rendered = normalise(render_report(sample_report(), fmt))
    if os.environ.get("HARDENER_REGEN_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with HARDENER_REGEN_GOLDEN=1 to create it"
    assert rendered == path.read_text(encoding="utf-8")
