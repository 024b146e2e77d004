"""`python -m studio …` is the same as the `flowloom …` command."""

import sys

from studio.cli import main

sys.exit(main())
