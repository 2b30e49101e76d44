"""hardener.provision."""
