"""SMTP smuggling (CVE-2023-51764): none of the 10 non-standard end-of-data forms ends a message.

Each form is sent by a raw socket client inside one DATA, followed by a smuggled MAIL/RCPT/DATA
transaction and then the real <CR><LF>.<CR><LF>. The server must answer DATA's content exactly once
(one reply), so the smuggled commands were content, never commands.
"""

from __future__ import annotations

import pytest

from tests.fixtures.mta import SmtpClient

FORMS = {
    "lflf": b"\n.\n", "crcr": b"\r.\r", "crlf": b"\r.\n", "lfcr": b"\n.\r",
    "lfcrlf": b"\n.\r\n", "crlflf": b"\r\n.\n", "crcrlf": b"\r.\r\n", "crlfcr": b"\r\n.\r",
    "nullbefore": b"\r\n\x00.\r\n", "nullafter": b"\r\n.\x00\r\n",
}
SMUGGLED = (b"MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<root@mx.hardener.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled body\r\n")


def smuggle(mta, form: bytes) -> list[int]:
    """Codes of every reply after the content was sent (through QUIT)."""
    with SmtpClient(mta.address, mta.port) as c:
        c.greeting()
        assert c.cmd("EHLO tester.example")[0] == 250
        assert c.cmd("MAIL FROM:<tester@sender.example>")[0] == 250
        assert c.cmd("RCPT TO:<root@mx.hardener.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(b"Subject: carrier\r\n\r\ncarrier body" + form + SMUGGLED + b"\r\n.\r\n")
        codes = [c.read_reply()[0]]
        codes.append(c.cmd("QUIT")[0])
        return codes


@pytest.mark.parametrize("mode", ["normalize", "reject"])
def test_no_form_ends_the_message(mta_factory, mode):
    mta = mta_factory({"smtpd_forbid_bare_newline": mode,
                       "smtpd_forbid_bare_newline_exclusions": ""})
    for name, form in FORMS.items():
        codes = smuggle(mta, form)
        bare = b"\r" in form.replace(b"\r\n", b"") or b"\n" in form.replace(b"\r\n", b"")
        expected = 550 if mode == "reject" and bare else 250
        assert codes == [expected, 221], (name, codes)
    log = mta.log_text()
    assert "smuggled@evil.example" not in log   # no MAIL FROM of the smuggled part was ever seen
