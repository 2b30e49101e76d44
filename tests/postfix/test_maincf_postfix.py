"""Whitespace that postconf cannot show (it collapses runs of blanks): ask a running smtpd instead.

A continued smtpd_banner keeps the continuation line's leading whitespace; the banner a real
Postfix sends must be exactly what MainCf.get() returns.
"""

from __future__ import annotations

import smtplib

from hardener.postfix import load_main_cf


def test_continued_banner_matches_running_postfix(postfix_factory) -> None:
    inst = postfix_factory(start=False)
    main_cf = inst.config_dir / "main.cf"
    text = main_cf.read_text()
    main_cf.write_text(text + "smtpd_banner = $myhostname  ESMTP\n    ready\tnow\n")
    inst.start()
    with smtplib.SMTP(timeout=30) as smtp:
        code, greeting = smtp.connect(inst.address, inst.port)
    assert code == 220
    assert greeting.decode() == load_main_cf(inst.config_dir).get("smtpd_banner")
    assert "  ESMTP    ready\tnow" in greeting.decode()
