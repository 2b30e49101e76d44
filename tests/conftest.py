"""Shared pytest fixtures (see tests/fixtures/): import them here so every test can use them."""

from tests.fixtures.net import loopback  # noqa: F401
