"""hardener: harden, deploy and audit secure SMTP gateways."""

__version__ = "0.1.0"
