"""Run records (io/records.py): every result carries the hardware, the commit, the command and its wall time."""

import sys
import time

from seqlm.io.records import hardware, record


def test_record_has_hardware_commit_command_and_time():
    t0 = time.perf_counter()
    r = record(t0, command=["seqlm", "train"])
    assert r["command"] == ["seqlm", "train"] and r["wall_seconds"] >= 0
    assert {"cpu", "cores", "python", "platform"} <= set(r["hardware"])
    assert r["commit"] is None or len(r["commit"]) == 40
    assert record()["command"] == sys.argv and "wall_seconds" not in record()


def test_a_torch_device_adds_threads():
    import torch

    assert hardware(torch.device("cpu"))["threads"] == torch.get_num_threads()
    assert "threads" not in hardware()
