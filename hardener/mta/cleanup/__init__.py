"""The only writer of queue files."""
