"""hardener.mta."""
