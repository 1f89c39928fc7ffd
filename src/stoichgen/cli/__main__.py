"""``python -m stoichgen.cli``: the command line."""

import sys

from stoichgen.cli import main

sys.exit(main())
