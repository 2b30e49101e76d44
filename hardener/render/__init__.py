"""hardener.render."""
