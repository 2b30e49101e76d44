"""Every built-in profile's rendered files start the daemon unedited.

Each profile is rendered with --set only for what must point at this machine: host names and
addresses (loopback), ports, and the config, queue and log paths (a temporary directory). Then the
real `hardener mta serve --config DIR` starts on the rendered files as they are, and an SMTP client
gets the 220 greeting and an EHLO answer.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.mta import BASE_DIR, MtaInstance, SmtpClient
from tests.fixtures.net import free_port
from tests.render.helpers import render

# What each profile requires, pointing at loopback (the next hops need not answer to start).
POINTS: dict[str, list[str]] = {
    "null-client": ["myhostname=app1.example.test", "relayhost=[127.0.0.1]:{spare}"],
    "mx-gateway": ["myhostname=mx1.example.test", "relay_domains=example.test",
                   "internal_nexthop=[127.0.0.1]:{spare}"],
    "outbound-relay": ["myhostname=relay.example.test", "mynetworks=127.0.0.0/8 [::1]/128"],
}
PROFILES = ["null-client", "mx-gateway", "outbound-relay"]   # outbound-relay: with SASL AUTH


@pytest.fixture
def rendered_root(loopback) -> Iterator[tuple[Path, str, int]]:
    """A temporary directory (readable by the mail owner on the way), a loopback address on lo and
    a free port on it; removed afterwards."""
    try:
        pwd.getpwnam("postfix")   # the profiles keep Postfix's default mail_owner
    except KeyError:
        pytest.skip("no postfix user (Debian package postfix)")
    BASE_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="profile-", dir=BASE_DIR))
    os.chmod(root, 0o755)
    address = loopback.host()
    yield root, address, free_port(address)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_profile_starts_unedited(profile: str, rendered_root) -> None:
    root, address, port = rendered_root
    spare = free_port("127.0.0.1")
    etc = root / "etc"
    render(profile, *(s.format(spare=spare) for s in POINTS[profile]),
           f"inet_interfaces={address}", f"smtpd_listen={address}:{port}",
           f"config_directory={etc}", f"queue_directory={root / 'queue'}",
           f"maillog_file={root / 'maillog'}", out=etc)
    mta = MtaInstance(root, address, port)   # the rendered files, as they are
    try:
        mta.start()
        with SmtpClient(address, port) as client:
            code, text = client.greeting()
            assert code == 220 and text.split()[1].endswith(".example.test"), text
            assert client.cmd("EHLO client.example")[0] == 250
            client.cmd("QUIT")
        assert mta.stop() == 0, mta.log_text()[-3000:]
    finally:
        mta.stop()
