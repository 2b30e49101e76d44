"""The shared --format / --output / --fail-on options: parsed values, one-line usage errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from hardener.cli.common import FailOnOption, FormatOption, OutputOption
from hardener.controls import Severity
from hardener.errors import InputError

seen: dict = {}
app = typer.Typer()


@app.command()
def report(fmt: FormatOption = "table", output: OutputOption = None, fail_on: FailOnOption = "high") -> None:
    seen.update(fmt=fmt, output=output, fail_on=fail_on)


@app.command("other")
def _other() -> None:  # a second command keeps typer from collapsing the app into one command
    pass


def run(*args: str) -> dict:
    seen.clear()
    app(args=["report", *args], standalone_mode=False)
    return dict(seen)


def test_defaults() -> None:
    assert run() == {"fmt": "table", "output": None, "fail_on": Severity.HIGH}


def test_parsed_values(tmp_path: Path) -> None:
    out = tmp_path / "r.sarif"
    assert run("--format", "SARIF", "--output", str(out), "--fail-on", "Medium") == {
        "fmt": "sarif", "output": out, "fail_on": Severity.MEDIUM}


@pytest.mark.parametrize("args, field, words", [
    (["--format", "xml"], "--format", "unknown format 'xml'"),
    (["--fail-on", "severe"], "--fail-on", "unknown severity 'severe'"),
    (["--output", "/nonexistent-dir/r.json"], "--output", "does not exist"),
])
def test_bad_values_raise_input_error_naming_the_option(args, field, words) -> None:
    with pytest.raises(InputError) as err:
        run(*args)
    assert err.value.field == field
    assert words in err.value.one_line()
    assert "\n" not in err.value.one_line()


def test_output_dash_means_stdout() -> None:
    assert run("--output", "-")["output"] is None


def test_output_onto_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        run("--output", str(tmp_path))


def test_through_the_real_cli_a_bad_format_is_one_line_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "hardener", "controls", "list", "--format", "xml"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "hardener: error: --format: unknown format 'xml' (one of: table, json, markdown)"]
