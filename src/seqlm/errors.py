"""One exception type for every user-facing failure.

A :class:`SeqlmError` carries one line that says what is wrong and how to fix it; the CLI prints it
(``seqlm: error: ...``) and exits with status 2, never a traceback.  Writing files: ``files.py``.
"""

from __future__ import annotations


class SeqlmError(Exception):
    """A problem with the user's input or environment, stated in one line with its fix."""
