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


def test_signals_held_whichever_thread_the_kernel_gives_them_to():
    """A process-directed signal goes to any thread that does not block it (the scoring threads, a library's),
    and Python runs its handler in the main thread: it is still held to the end of the block."""
    import signal
    import threading

    from seqlm.io.files import signals_held

    seen = []

    def handler(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    ready, done = threading.Event(), threading.Event()
    other = threading.Thread(target=lambda: (ready.set(), done.wait(10)))
    other.start()
    ready.wait(10)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                signal.pthread_kill(other.ident, signal.SIGTERM)  # to the other thread
                for _ in range(1000):  # bytecodes enough for the main thread to run a pending handler
                    pass
                inside = list(seen)
        assert inside == [] and seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is handler  # put back
    finally:
        signal.signal(signal.SIGTERM, previous)
        done.set()
        other.join()


def test_signals_held_in_another_thread_hold_nothing_there():
    """Only the main thread runs signal handlers: a block in another thread changes no handler."""
    import signal
    import threading

    from seqlm.io.files import signals_held

    before, inside = signal.getsignal(signal.SIGTERM), []

    def run():
        with signals_held():
            inside.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert inside == [before]
