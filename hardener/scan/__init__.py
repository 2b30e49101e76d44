"""hardener.scan."""
