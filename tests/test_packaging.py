"""The wheel carries templates/ and profiles/: an installed hardener renders outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_renders_outside_checkout(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheel_dir), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheels = list(wheel_dir.glob("hardener-*.whl"))
    assert len(wheels) == 1
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                    str(wheels[0])], check=True, capture_output=True, timeout=300)
    assert (site / "hardener" / "data_templates" / "postfix" / "main.cf.j2").is_file()
    assert (site / "hardener" / "data_profiles" / "null-client.yaml").is_file()

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import hardener; print(hardener.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where
    proc = subprocess.run([sys.executable, "-m", "hardener", "render", "null-client", "--out", "out",
                           "--set", "myhostname=app1.example.com",
                           "--set", "relayhost=[smtp.example.com]:587"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (work / "out" / "main.cf").is_file()
    assert (work / "out" / "master.cf").is_file()


def test_every_package_is_listed_in_pyproject() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hardener").rglob("__init__.py")}
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages"
