"""`python -m maasflow` runs the same entry point as the `maasflow` command."""

import sys

from maasflow.cli import main

sys.exit(main())
