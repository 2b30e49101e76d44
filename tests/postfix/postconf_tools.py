"""Run the real postconf on a config directory, for tests that compare the parser with Postfix."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"


def cool_down(*paths: Path) -> None:
    """Date files a minute back: Postfix pauses (~2 s) reading a file modified in the last second
    until it "cools down" (dict_load_file), which would make every comparison slow."""
    then = time.time() - 60
    for path in paths:
        if path.exists():
            os.utime(path, (then, then))


def postconf(config_dir: Path, *args: str) -> str:
    """stdout of `postconf -c DIR ARGS...` (warnings on stderr are ignored; non-zero exit raises)."""
    cool_down(config_dir / "main.cf", config_dir / "master.cf")
    # stderr goes to a file: with stderr on a pipe, postconf takes ~2 s longer to exit.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run([POSTCONF, "-c", str(config_dir), *args], stdout=subprocess.PIPE,
                              stderr=err, stdin=subprocess.DEVNULL, text=True, timeout=60)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"postconf {' '.join(args[:3])}... failed: "
                               f"{err.read().decode(errors='replace').strip()}")
    return proc.stdout


def postconf_expanded(config_dir: Path, names: list[str]) -> dict[str, str]:
    """Each name's fully expanded value as `postconf -c DIR -hx NAME...` prints it (one call)."""
    lines = postconf(config_dir, "-hx", *names).split("\n")
    return dict(zip(names, lines[:len(names)]))


def postconf_all_expanded(config_dir: Path, *extra: str) -> dict[str, str]:
    """Every parameter's expanded value from one `postconf -c DIR -x` (much faster than -hx NAMES)."""
    values = {}
    for line in postconf(config_dir, "-x", *extra).splitlines():
        name, _, value = line.partition(" = ")
        values[name.rstrip(" =")] = value
    return values


def normalized(value: str) -> str:
    """postconf prints values with whitespace runs collapsed to one space (postconf_print.c)."""
    return " ".join(value.split())
