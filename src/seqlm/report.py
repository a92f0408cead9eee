"""``python -m seqlm.report [--check]``: regenerate the README's results section (see reports.py)."""

import sys

from .reports import main

if __name__ == "__main__":
    sys.exit(main())
