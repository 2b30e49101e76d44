"""Shared pytest fixtures (see tests/fixtures/): import them here so every test can use them."""

from tests.fixtures.net import loopback  # noqa: F401
from tests.fixtures.postfix import (  # noqa: F401
    postfix_factory,
    postfix_module_factory,
    smtp_sink_factory,
)
from tests.fixtures.tls import cert_factory  # noqa: F401
from tests.fixtures.dns import dnsmasq_factory  # noqa: F401
from tests.fixtures.mta import mail_owner, mta_factory  # noqa: F401
