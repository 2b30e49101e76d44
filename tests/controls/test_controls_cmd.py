"""`hardener controls list | show` in every format, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hardener.controls import CATALOG
from hardener.controls.docs import control_markdown


def hardener(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True, text=True,
                          timeout=60)


def test_list_table_is_plain_when_piped() -> None:
    proc = hardener("controls", "list")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii() and "\x1b" not in proc.stdout
    for control in CATALOG:
        assert control.id in proc.stdout and control.slug in proc.stdout


def test_list_json() -> None:
    proc = hardener("controls", "list", "--format", "json")
    data = json.loads(proc.stdout)
    assert data["schema"] == 1
    assert [c["id"] for c in data["controls"]] == [c.id for c in CATALOG]


def test_list_markdown() -> None:
    proc = hardener("controls", "list", "--format", "markdown")
    assert proc.stdout.startswith("| Id | Check | Severity | Vantage | Title |")
    assert proc.stdout.count("\n") == len(CATALOG) + 2


@pytest.mark.parametrize("key", ["HRD-SMUG-001", "hrd-smug-001", "smtp-smuggling"])
def test_show_by_id_or_slug(key: str) -> None:
    proc = hardener("controls", "show", key, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["id"], data["slug"], data["severity"]) == ("HRD-SMUG-001", "smtp-smuggling", "high")


def test_show_table_and_markdown() -> None:
    table = hardener("controls", "show", "open-relay")
    assert "HRD-RELAY-001" in table.stdout and "reject_unauth_destination" in table.stdout
    markdown = hardener("controls", "show", "open-relay", "--format", "markdown")
    assert markdown.stdout == control_markdown(CATALOG[0], level=1)


def test_show_unknown_is_one_line_exit_2() -> None:
    proc = hardener("controls", "show", "HRD-NOPE-999")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "hardener: error: ID_OR_SLUG: no control with id or check 'HRD-NOPE-999' (see 'hardener controls list')"]
