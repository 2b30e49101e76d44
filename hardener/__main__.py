"""`python -m hardener` runs the command line."""

import sys

from hardener.cli import main

sys.exit(main())
