"""`python -m ossy` runs the CLI."""

import sys

from ossy.cli.main import main

sys.exit(main())
