"""The generated parts of the manual (manual.py): pages and the README headline up to date, the headline's
choice of rows."""

import json

import pytest

from conftest import REPO
from seqlm import manual as docs


def test_generated_pages_and_readme_are_up_to_date():
    assert docs.main(["--docs", str(REPO / "docs"), "--readme", str(REPO / "README.md"),
                      "--results", str(REPO / "results"), "--check"]) == 0






def test_headline_takes_each_familys_best_per_hardware(tmp_path):
    def run(name, kind, ppl, device=None):
        hw = {"cpu": "x86", "cores": 2, **({"device": device} if device else {})}
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "type": "train", "recipe": name, "model": {"kind": kind}, "config": {"data": {"corpus": "ptb"}},
            "metrics": {"test_perplexity": ppl}, "wall_seconds": 600, "hardware": hw}))

    run("a", "lstm", 100.0)
    run("b", "lstm", 90.0)
    run("c", "lstm", 70.0, device="GPU 1")
    run("d", "gru", 120.0)
    table = docs.headline(tmp_path).splitlines()
    rows = [r for r in table if r.startswith("| lstm") or r.startswith("| gru")]
    assert [r.split("|")[3].strip() for r in rows] == ["70.00 ppl", "90.00 ppl", "120.00 ppl"]
    assert "10.0 min" in rows[1] and "GPU 1" in rows[0]


def test_a_readme_without_markers_is_refused():
    with pytest.raises(SystemExit, match="headline"):
        docs.update_readme("# no markers\n", REPO / "results")
