"""hardener.profiles."""
