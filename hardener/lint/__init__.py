"""hardener.lint."""
