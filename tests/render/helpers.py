"""Shared bits for the render tests: the values each built-in profile needs, and a render call."""

from __future__ import annotations

import shutil
from pathlib import Path

from hardener.profiles import load_profile, resolve
from hardener.render import render_files, render_to
from tests.fixtures.mta import MtaInstance

# The minimum each built-in profile needs (its `required` keys), with documentation addresses.
REQUIRED_SETS: dict[str, list[str]] = {
    "null-client": ["myhostname=app1.example.com", "relayhost=[smtp.example.com]:587"],
    "mx-gateway": ["myhostname=mx1.example.com", "relay_domains=example.com example.org",
                   "internal_nexthop=[10.1.2.3]:25"],
    "outbound-relay": ["myhostname=relay.example.com",
                       "mynetworks=127.0.0.0/8 [::1]/128 10.1.0.0/16"],
}
PROFILES = sorted(REQUIRED_SETS)


def render(profile: str, *extra: str, out: Path | None = None) -> dict[str, str]:
    """Render a built-in profile with its required values plus `extra` --set assignments."""
    settings = resolve(load_profile(profile), None, [*REQUIRED_SETS[profile], *extra])
    if out is not None:
        render_to(settings, out)
    return {name: data.decode() for name, data in render_files(settings).items()}


def render_for(mta: MtaInstance, profile: str, *extra: str) -> dict[str, str]:
    """Render a built-in profile into `mta`'s config directory (replacing what is there), with
    `mta`'s listen address, queue directory and maillog file, plus `extra` --set assignments."""
    shutil.rmtree(mta.config_dir, ignore_errors=True)
    return render(profile, *extra, f"smtpd_listen={mta.address}:{mta.port}",
                  f"config_directory={mta.config_dir}", f"queue_directory={mta.queue_dir}",
                  f"maillog_file={mta.log_path}", out=mta.config_dir)
