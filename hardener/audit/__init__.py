"""hardener.audit."""
