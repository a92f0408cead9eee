"""seqlm.diagnose (workflows/diagnose.py): the API holds every rule the CLI used to (what, distances,
families, a model for gradients, outputs checked before work), and records the run."""

import json

import pytest

import seqlm
from seqlm.cli import main
from seqlm.errors import SeqlmError


@pytest.mark.parametrize("kwargs,match", [
    ({"what": "weights"}, "unknown diagnostic 'weights'"),
    ({"what": "gradients"}, "needs a model"),
    ({"what": "recall", "distances": "1,x"}, "comma-separated integers"),
    ({"what": "recall", "distances": [0, 5]}, "--distances must be >= 1"),
    ({"what": "recall", "families": "kn5,bert"}, "unknown families"),
])
def test_bad_requests_are_one_line(kwargs, match):
    with pytest.raises(SeqlmError, match=match):
        seqlm.diagnose(**kwargs)


def test_gradients_result_is_recorded_and_written(lstm, small_files, tmp_path, capsys):
    _, summary = lstm
    out = tmp_path / "g.json"
    result = seqlm.diagnose("gradients", summary["out"], file=small_files["valid"], K=5, positions=4, out=out)
    assert result["trained"] and {"hardware", "commit", "command"} <= set(result)
    assert json.loads(out.read_text())["K"] == result["K"] == 5
    assert main(["-q", "diagnose", "gradients", summary["out"], "--file", str(small_files["valid"]), "--K", "5",
                 "--positions", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["states"] == result["states"]
