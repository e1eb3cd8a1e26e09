"""`python -m ossy.train`: train nano and write its checkpoint (see `ossy.cli.train`)."""

import sys

from ossy.cli.train import main

sys.exit(main())
