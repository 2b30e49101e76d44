"""hardener.postfix."""
