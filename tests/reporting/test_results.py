"""Result files (reporting/results.py): each says its type; a file without one is a one-line error."""

import json

import pytest

from conftest import REPO
from seqlm.errors import SeqlmError
from seqlm.reporting.results import TYPES, read_results


def test_every_committed_result_says_its_type():
    found = read_results(REPO / "results")
    assert found and {res["type"] for _, res in found} <= set(TYPES)


def test_a_result_without_a_type_is_one_line(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"recipe": "x", "metrics": {}}))
    with pytest.raises(SeqlmError, match="old.json has no known \"type\""):
        read_results(tmp_path)


