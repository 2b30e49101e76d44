"""banner-leak from the config: smtpd_banner after its host name, and smtpd_reject_footer as sent.

tests/test_vantage_agreement.py checks the same rules against a running Postfix; these are the
small cases around them.
"""

from __future__ import annotations

from pathlib import Path

from hardener.lint.banner import footer_text
from hardener.lint.runner import lint_path


def _lint(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "main.cf").write_text("compatibility_level = 3.6\n" + text)
    return [f.evidence for f in lint_path(tmp_path).findings if f.check == "banner-leak"]


def test_footer_is_read_as_postfix_sends_it() -> None:
    # Postfix expands only session attributes in the footer; $mail_name stays empty
    assert footer_text("\\cHelp: call $client_address at ${server_name}\\n$mail_name") == \
        "Help: call   at  \n "


def test_footer_naming_the_software_leaks(tmp_path: Path) -> None:
    found = _lint(tmp_path, "smtpd_banner = $myhostname ESMTP\n"
                            "smtpd_reject_footer = Powered by Postfix on Debian\n")
    assert len(found) == 1 and "smtpd_reject_footer" in found[0] and "`Postfix`" in found[0]


def test_footer_macros_leak_nothing(tmp_path: Path) -> None:
    assert _lint(tmp_path, "smtpd_banner = $myhostname ESMTP\n"
                           "smtpd_reject_footer = $mail_name $mail_version\n") == []


def test_first_word_of_the_greeting_is_the_host_name(tmp_path: Path) -> None:
    # the audit skips the greeting's first word too: a host named postfix.* leaks nothing
    assert _lint(tmp_path, "myhostname = mx.example.com\n"
                           "smtpd_banner = postfix.example.com ESMTP\n") == []


def test_renamed_mail_name_is_judged_by_what_clients_see(tmp_path: Path) -> None:
    assert _lint(tmp_path, "mail_name = MTA\nsmtpd_banner = $myhostname ESMTP $mail_name\n") == []
