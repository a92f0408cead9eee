"""``seqlm`` as launched by torchrun in tests/test_distributed.py, with two test-only instruments:

- every file this process creates, writes, renames or removes is recorded (a Python audit hook) in
  ``$SEQLM_TEST_AUDIT/rank{RANK}.log``, with the process id in ``rank{RANK}.pid``;
- ``SEQLM_TEST_KILL=RANK:STEP`` kills that rank (SIGKILL, no clean-up) when it starts that training step.
"""

import os
import signal
import sys
from pathlib import Path

rank = os.environ.get("RANK", "0")
audit = Path(os.environ["SEQLM_TEST_AUDIT"])
audit.mkdir(parents=True, exist_ok=True)
(audit / f"rank{rank}.pid").write_text(str(os.getpid()))
log = open(audit / f"rank{rank}.log", "a", buffering=1)


def hook(event, args):
    if event == "open" and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1], args[2]
        if (mode and any(c in mode for c in "wax+")) or (flags and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            log.write(f"open {args[0]}\n")
    elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.symlink", "os.link"):
        log.write(f"{event} {args[0]}\n")


sys.addaudithook(hook)

kill = os.environ.get("SEQLM_TEST_KILL")
if kill and kill.split(":")[0] == rank:
    from seqlm.training.step import Stepper

    at, calls = int(kill.split(":")[1]), [0]
    step = Stepper.step

    def dying_step(self, *a, **kw):
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, *a, **kw)

    Stepper.step = dying_step

from seqlm.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
