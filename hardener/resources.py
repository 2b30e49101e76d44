"""Where the shipped templates and built-in profiles are, installed or in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _package_dir(package: str, fallback: str) -> Path:
    try:
        return Path(str(resources.files(package)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / fallback


def templates_dir() -> Path:
    """The directory holding postfix/*.j2, aliases.j2 and systemd/*.j2."""
    return _package_dir("hardener.data_templates", "templates")


def profiles_dir() -> Path:
    """The directory holding the built-in profiles (NAME.yaml)."""
    return _package_dir("hardener.data_profiles", "profiles")
