"""io/files.py: signals are held back over the instants where an exception would leave a temporary file."""

import pytest


def test_signals_held_wait_for_the_end_of_the_block():
    import os
    import signal

    from seqlm.io.files import signals_held

    seen = []

    def handler(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                inside = list(seen)  # held: not delivered yet
        assert inside == [] and seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
