"""``python -m seqlm``: the same as the ``seqlm`` command."""

import sys

from seqlm.cli import main

sys.exit(main())
