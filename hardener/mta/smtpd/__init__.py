"""The SMTP server: talks to the outside world, trusts nothing it reads."""
