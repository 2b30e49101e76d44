"""The one banner-leak list both vantages apply (hardener.controls.disclosure)."""

from __future__ import annotations

import pytest

from hardener.controls.disclosure import leaks, without_status_codes


@pytest.mark.parametrize("text, found", [
    ("ESMTP Postfix 3.7.11 (Debian/GNU)", [("Postfix", "Postfix 3.7.11"), ("Debian", "Debian/GNU")]),
    ("ESMTP 3.7.11", [("version number", "3.7.11")]),
    ("ESMTP ready v2.1", [("version number", "v2.1")]),
    ("ESMTP Linux", [("GNU/Linux", "Linux")]),
    ("ESMTP Alpine Linux", [("Alpine", "Alpine Linux")]),
    # a version after a slash belongs to what precedes it (Sendmail's 8.15.2/8.15.2)
    ("ESMTP Sendmail 8.15.2/8.15.2", [("Sendmail", "Sendmail 8.15.2")]),
])
def test_leaks(text: str, found: list[tuple[str, str]]) -> None:
    assert leaks(text) == found


@pytest.mark.parametrize("text", [
    "ESMTP", "Hello client.example.org [192.0.2.1]", "ESMTP ready at Mon, 25 Nov 2026 17:00:00",
    "Error: command not recognized", "mail exchange for example.com",
])
def test_quiet(text: str) -> None:
    assert leaks(text) == []


def test_enhanced_status_codes_are_not_versions() -> None:
    text = without_status_codes(["5.5.2 Error: command not recognized", "5.5.2   127.0.0.9"])
    assert leaks(text) == []
    assert leaks(without_status_codes(["5.5.2 Powered by Postfix 3.7"])) == [("Postfix", "Postfix 3.7")]
