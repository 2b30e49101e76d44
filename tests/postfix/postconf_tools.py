"""Run the real postconf on a config directory, for tests that compare the parser with Postfix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"


def postconf(config_dir: Path, *args: str) -> str:
    """stdout of `postconf -c DIR ARGS...` (warnings on stderr are ignored; non-zero exit raises)."""
    proc = subprocess.run([POSTCONF, "-c", str(config_dir), *args], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"postconf {' '.join(args[:3])}... failed: {proc.stderr.strip()}")
    return proc.stdout


def postconf_expanded(config_dir: Path, names: list[str]) -> dict[str, str]:
    """Each name's fully expanded value as `postconf -c DIR -hx NAME...` prints it (one call)."""
    lines = postconf(config_dir, "-hx", *names).split("\n")
    return dict(zip(names, lines[:len(names)]))


def normalized(value: str) -> str:
    """postconf prints values with whitespace runs collapsed to one space (postconf_print.c)."""
    return " ".join(value.split())
