"""Memory budgets (io/memory.py): --memory sizes in bytes, and the errors for sizes that are not."""


import pytest

from seqlm.errors import SeqlmError
from seqlm.io.memory import parse_memory


def test_parse_memory():
    assert parse_memory("4G") == 4 << 30 and parse_memory("500M") == 500 << 20 and parse_memory("64k") == 64 << 10
    assert parse_memory("1.5GB") == int(1.5 * (1 << 30)) and parse_memory("123") == 123
    assert 0 < parse_memory("10%") < parse_memory(None) * 2
    for bad in ("lots", "-1G", "0", "4X"):
        with pytest.raises(SeqlmError, match="--memory"):
            parse_memory(bad)


