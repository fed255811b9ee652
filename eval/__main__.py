"""``python -m eval``: the same as the ``marco-eval`` command."""

import sys

from eval.cli import main

sys.exit(main())
