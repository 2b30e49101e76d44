"""hardener.mta.delivery."""
