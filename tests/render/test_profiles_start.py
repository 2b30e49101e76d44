"""Every built-in profile's rendered files start the daemon unedited, privileges separated.

Each profile is rendered with --set only for what must point at this machine: host names and
addresses (loopback), ports, and the config, queue and log paths (a temporary directory). Then the
real `hardener mta serve --config DIR` starts on the rendered files as they are, and an SMTP client
gets the 220 greeting and an EHLO answer.
"""

from __future__ import annotations

import pwd

import pytest

from tests.fixtures import procs
from tests.fixtures.mta import SmtpClient
from tests.fixtures.net import free_port
from tests.render.helpers import render_for

# What each profile requires, pointing at loopback (the next hops need not answer to start).
POINTS: dict[str, list[str]] = {
    "null-client": ["myhostname=app1.example.test", "relayhost=[127.0.0.1]:{spare}"],
    "mx-gateway": ["myhostname=mx1.example.test", "relay_domains=example.test",
                   "internal_nexthop=[127.0.0.1]:{spare}"],
    "outbound-relay": ["myhostname=relay.example.test", "mynetworks=127.0.0.0/8 [::1]/128"],
}
PROFILES = ["null-client", "mx-gateway", "outbound-relay"]   # outbound-relay: with SASL AUTH


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_profile_starts_unedited(profile: str, mta_factory) -> None:
    try:
        pwd.getpwnam("postfix")   # the profiles keep Postfix's default mail_owner
    except KeyError:
        pytest.skip("no postfix user (Debian package postfix)")
    mta = mta_factory(start=False)
    address, port = mta.address, mta.port
    spare = free_port("127.0.0.1")
    render_for(mta, profile, *(s.format(spare=spare) for s in POINTS[profile]),
               f"inet_interfaces={address}")   # the rendered files, as they are
    mta.start()
    with SmtpClient(address, port) as client:
        code, text = client.greeting()
        assert code == 220 and text.split()[1].endswith(".example.test"), text
        assert client.cmd("EHLO client.example")[0] == 250
        # issue 8: the daemon as rendered (smtpd, pickup, cleanup chroot y) is separated
        procs.check_privilege_separation(mta.proc.pid, mta.pids(), pwd.getpwnam("postfix").pw_uid,
                                         str(mta.queue_dir), jailed=("smtpd", "cleanup", "pickup"))
        client.cmd("QUIT")
    assert mta.stop() == 0, mta.log_text()[-3000:]
