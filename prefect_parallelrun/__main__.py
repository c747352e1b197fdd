"""`python -m prefect_parallelrun`: the `prefect-parallelrun` command."""

import sys

from prefect_parallelrun.cli import main

sys.exit(main())
