"""hardener.hostcheck."""
