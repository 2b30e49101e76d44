"""docs/render.md's profile-key table is generated from the key specs and profiles; it must stay current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hardener.errors import InputError
from hardener.profiles import KEYS, builtin_names
from hardener.profiles.docs import BEGIN, END, extract_block, generated_block, replace_block, update_file

REPO = Path(__file__).resolve().parents[2]
RENDER_MD = REPO / "docs" / "render.md"


def test_render_md_key_table_is_current() -> None:
    page = RENDER_MD.read_text(encoding="utf-8")
    assert extract_block(page, str(RENDER_MD)) == generated_block(), (
        "docs/render.md's key table is stale: run `python -m hardener.profiles.docs --update docs/render.md`")


def test_module_prints_the_block() -> None:
    proc = subprocess.run([sys.executable, "-m", "hardener.profiles.docs"], capture_output=True,
                          text=True, timeout=60, check=True)
    assert proc.stdout == generated_block()


def test_block_has_every_key_and_every_builtin_profile() -> None:
    block = generated_block()
    for spec in KEYS:
        assert f"| `{spec.name}` |" in block
    header = next(line for line in block.splitlines() if line.startswith("| Key |"))
    for name in builtin_names():
        assert f"| {name} |" in header
    assert ">=TLSv1.2" not in block.replace("`>=TLSv1.2`", "")  # '>' outside code is escaped


def test_update_rewrites_only_the_block(tmp_path: Path) -> None:
    page = tmp_path / "render.md"
    page.write_text(f"# Title\n\nhand-written\n\n{BEGIN}\nstale table\n{END}\n\nafter\n", encoding="utf-8")
    assert update_file(page) is True
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nhand-written\n\n") and text.endswith("\nafter\n")
    assert extract_block(text) == generated_block()
    assert update_file(page) is False  # idempotent
    assert replace_block(text) == text


def test_update_without_markers_is_a_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    page = tmp_path / "render.md"
    page.write_text("# no markers here\n", encoding="utf-8")
    with pytest.raises(InputError):
        update_file(page)
    proc = subprocess.run([sys.executable, "-m", "hardener.profiles.docs", "--update", str(page)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "BEGIN/END" in proc.stderr
    assert page.read_text(encoding="utf-8") == "# no markers here\n"
    assert [p.name for p in tmp_path.iterdir()] == ["render.md"]
