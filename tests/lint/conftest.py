"""Fixtures of the lint tests: test certificates and corpus cases materialized in a temp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.lint.certgen import write_certificates

CORPUS = Path(__file__).parent / "corpus"
CERTDIR_PLACEHOLDER = "@CERTDIR@"


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of test certificates (good, expired, selfsigned, wrongname, weakkey, wildcard)."""
    directory = tmp_path_factory.mktemp("lint-certs")
    write_certificates(directory)
    return directory


def materialize(case: str, dest: Path, cert_dir: Path) -> Path:
    """Copy corpus case `case` to dest/case with @CERTDIR@ replaced; return that directory."""
    target = dest / case
    shutil.copytree(CORPUS / case, target)
    for path in target.iterdir():
        if path.is_file():
            text = path.read_text()
            if CERTDIR_PLACEHOLDER in text:
                path.write_text(text.replace(CERTDIR_PLACEHOLDER, str(cert_dir)))
    return target


@pytest.fixture
def corpus_case(tmp_path: Path, cert_dir: Path):
    """corpus_case(NAME) -> a temp copy of tests/lint/corpus/NAME ready to lint."""
    return lambda name: materialize(name, tmp_path, cert_dir)
