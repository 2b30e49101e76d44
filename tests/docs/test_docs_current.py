"""The generated and checkable parts of the user docs stay true.

- docs/render.md's profile-key table is generated from the key specs and profiles (like
  tests/controls/test_docs.py does for docs/controls.md);
- the JSON Schema in docs/reports.md validates real lint and audit reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from hardener.errors import InputError
from hardener.profiles import KEYS, builtin_names
from hardener.profiles.docs import BEGIN, END, extract_block, generated_block, replace_block, update_file
from tests.fixtures.net import free_port, wait_for_port

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


# --- docs/reports.md: the JSON Schema of the report must describe real reports -----------------

REPORTS_MD = REPO / "docs" / "reports.md"
SCHEMA_MARKER = "<!-- report-schema -->"


def report_schema() -> dict:
    """The JSON Schema block that follows the marker comment in docs/reports.md."""
    page = REPORTS_MD.read_text(encoding="utf-8")
    after = page[page.index(SCHEMA_MARKER) + len(SCHEMA_MARKER):]
    start = after.index("```json\n") + len("```json\n")
    return json.loads(after[start:after.index("\n```", start)])


def hardener_json(*args: str, cwd: Path) -> dict:
    """Run `python -m hardener ARGS --format json` and return the parsed report."""
    proc = subprocess.run([sys.executable, "-m", "hardener", *args, "--format", "json"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1, 3), proc.stderr
    return json.loads(proc.stdout)


def test_report_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(report_schema())


def test_lint_reports_match_the_documented_schema(tmp_path: Path) -> None:
    debian = tmp_path / "debian"
    debian.mkdir()
    debian_main = Path("/usr/share/postfix/main.cf.debian")
    if not debian_main.is_file():
        pytest.skip("Debian's postfix package is not installed")
    (debian / "main.cf").write_text(debian_main.read_text(encoding="utf-8"), encoding="utf-8")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "main.cf").write_text(
        "compatibility_level = 2\nmyhostname = mail.example.com\n"
        "smtpd_banner = $myhostname ESMTP $mail_name\nmynetworks = 0.0.0.0/0\n"
        "smtpd_relay_restrictions = permit_mynetworks, permit\nrelayhost = smtp.example.com\n",
        encoding="utf-8")
    (legacy / "master.cf").write_text("smtp      inet  n       -       n       -       -       smtpd\n",
                                      encoding="utf-8")
    validator = jsonschema.Draft202012Validator(report_schema())
    for target in ("debian/main.cf", "legacy"):
        report = hardener_json("lint", target, cwd=tmp_path)
        assert report["targets"][0]["findings"], target
        validator.validate(report)
    lines = [f["location"]["line"] for f in hardener_json("lint", "debian", cwd=tmp_path)["targets"][0]["findings"]]
    assert None in lines and any(isinstance(n, int) for n in lines)  # both location forms occur


def test_audit_reports_match_the_documented_schema(tmp_path: Path) -> None:
    """A plain aiosmtpd server (findings, a banner) and a closed port (incomplete, error)."""
    validator = jsonschema.Draft202012Validator(report_schema())
    closed = free_port()
    report = hardener_json("audit", f"127.0.0.1:{closed}", "--timeout", "3", cwd=tmp_path)
    assert report["targets"][0]["status"] == "incomplete" and report["targets"][0]["error"]
    validator.validate(report)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port)
        report = hardener_json("audit", f"127.0.0.1:{port}", "--timeout", "5", cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=10)
    target = report["targets"][0]
    assert target["banner"] and target["findings"]
    validator.validate(report)
