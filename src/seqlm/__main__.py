"""``python -m seqlm``: the same as the ``seqlm`` command."""

import sys

from .cli import main

sys.exit(main())
