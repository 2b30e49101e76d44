"""Typed settings read from main.cf/master.cf through the one parser."""
