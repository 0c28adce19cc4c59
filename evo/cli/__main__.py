"""``python -m evo.cli``: the same as the ``evo`` script."""

import sys

from evo.cli import main

sys.exit(main())
