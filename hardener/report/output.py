"""Render a Report in a named format and deliver it: to standard output or, atomically, to a file.

Every format renders the same Report object (hardener.report.model); none is built from another's
text. The exit code comes from the model (Report.exit_code), never from a renderer.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from hardener.controls import Severity
from hardener.errors import InputError
from hardener.report.model import Report

FORMATS: tuple[str, ...] = ("table", "json", "sarif", "junit", "markdown")

# format name -> module in hardener.report.formats exposing render(report, ...) -> str
_MODULES = {"table": "table", "json": "json_format", "sarif": "sarif", "junit": "junit",
            "markdown": "markdown"}

PLAIN_WIDTH = 100  # table width when not writing to a terminal (CI logs, files)


def render_report(report: Report, fmt: str, *, color: bool = False, width: int | None = None) -> str:
    """The report as text in format `fmt` (one of FORMATS).

    `color` and `width` apply to the table only: colour for a terminal, plain text otherwise.
    """
    if fmt not in _MODULES:
        raise InputError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})", field="--format")
    module = importlib.import_module(f"hardener.report.formats.{_MODULES[fmt]}")
    if fmt == "table":
        return module.render(report, color=color, width=width or PLAIN_WIDTH)
    return module.render(report)


def emit_report(report: Report, fmt: str, output: Path | None, fail_on: Severity = Severity.HIGH,
                *, stream: TextIO | None = None) -> int:
    """Write the report to `output` (atomically) or to `stream` (default stdout); return the exit code.

    The table is coloured and sized to the terminal only when it goes to a terminal.
    """
    if output is not None:
        write_atomically(output, render_report(report, fmt))
    else:
        out = stream if stream is not None else sys.stdout
        tty = _isatty(out)
        width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns if tty else None
        text = render_report(report, fmt, color=tty and _color_allowed(), width=width)
        out.write(text)
        out.flush()
    return report.exit_code(fail_on)


def check_output_path(path: Path, option: str = "--output") -> None:
    """InputError unless `path` can be written as a file (its directory exists and is writable)."""
    if path.is_dir():
        raise InputError("is a directory, expected a file name", file=str(path), field=option)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"directory {str(parent)!r} does not exist", file=str(path), field=option)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"directory {str(parent)!r} is not writable", file=str(path), field=option)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same directory and a rename.

    Readers see the old file or the complete new one, never a partial report.
    """
    check_output_path(path)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, _mode_for(path))
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def _mode_for(path: Path) -> int:
    """Keep an existing file's mode; a new file gets 0666 minus the umask, not mkstemp's 0600."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        pass
    try:  # read the umask without os.umask(), which would change it for every thread meanwhile
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _color_allowed() -> bool:
    """Honour NO_COLOR (https://no-color.org) and TERM=dumb."""
    return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
