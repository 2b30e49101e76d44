"""hardener.mta.maildrop, the library behind `hardener sendmail`, called without the CLI (as scan
and provision may): which config directory it reads, what it writes, what it refuses.
No daemon runs here, and the tests run as root: submit() takes root's way, the file written
straight into maildrop/ for the mail owner. (The socket path, as an unprivileged user, is
tests/mta/test_pickup.py and test_local_submission.py.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from hardener.mta.maildrop import (EX_CONFIG, EX_DATAERR, EX_USAGE, Submission, SubmitError,
                                   config_directory, submit)
from hardener.mta.pickup import MAX_RECIPIENTS
from hardener.mta.queue.layout import QueueLayout


@pytest.mark.parametrize("flag, env, expected", [
    ("/from/flag", {"MAIL_CONFIG": "/from/mail", "HARDENER_CONFIG": "/from/hardener"}, "/from/flag"),
    ("", {"MAIL_CONFIG": "/from/mail", "HARDENER_CONFIG": "/from/hardener"}, "/from/mail"),
    ("", {"HARDENER_CONFIG": "/from/hardener"}, "/from/hardener"),
    ("", {"MAIL_CONFIG": "", "HARDENER_CONFIG": ""}, "/etc/hardener"),
    ("", {}, "/etc/hardener"),
])
def test_config_directory_order(flag: str, env: dict[str, str], expected: str) -> None:
    """-C DIR, else $MAIL_CONFIG (sendmail's), else $HARDENER_CONFIG, else /etc/hardener."""
    assert config_directory(Submission(config_dir=flag), env) == Path(expected)


@pytest.fixture
def config(tmp_path: Path) -> tuple[Path, QueueLayout]:
    layout = QueueLayout(tmp_path / "queue")
    layout.ensure()
    (tmp_path / "main.cf").write_text(f"queue_directory = {layout.root}\n"
                                      "message_size_limit = 1000\nmail_owner = nobody\n")
    return tmp_path, layout


def test_submit_writes_one_complete_file(config) -> None:
    config_dir, layout = config
    name = submit(Submission(["u@remote.example"], sender="s@host.example",
                             config_dir=str(config_dir)),
                  io.BytesIO(b"Subject: hi\n\nbody\n.\nnot part of it\n"))
    files = sorted(p.name for p in (layout.root / "maildrop").iterdir())
    assert files == [name]
    path = layout.root / "maildrop" / name
    data = path.read_bytes()
    assert data.endswith(b"Subject: hi\n\nbody\n")
    st = path.stat()   # the mail owner's (pickup reads it as the mail owner), private
    assert (st.st_uid, st.st_mode & 0o777) == (65534, 0o600) and b"\nuid: 0\n" in data
    assert b"recipient: u@remote.example" in data


@pytest.mark.parametrize("submission, stdin, code, message", [
    (Submission([]), b"Subject: x\n\nhi\n", EX_USAGE, "no recipient addresses"),
    (Submission([f"u{i}@x.example" for i in range(MAX_RECIPIENTS + 1)]), b"hi\n", EX_DATAERR,
     f"more than {MAX_RECIPIENTS} recipients"),
    (Submission(["u@x.example"]), b"x" * 2000 + b"\n", EX_DATAERR, "message file too big"),
    (Submission(["bad address@@x.example"]), b"hi\n", EX_DATAERR, "recipient address"),
])
def test_refusals_leave_nothing_behind(config, submission, stdin, code, message) -> None:
    config_dir, layout = config
    submission.config_dir = str(config_dir)
    with pytest.raises(SubmitError, match=message) as err:
        submit(submission, io.BytesIO(stdin))
    assert err.value.code == code
    assert list((layout.root / "maildrop").iterdir()) == []


def test_unreadable_config_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(SubmitError) as err:
        submit(Submission(["u@x.example"], config_dir=str(tmp_path / "nowhere")), io.BytesIO(b""))
    assert err.value.code == EX_CONFIG and "main.cf" in str(err.value)
