from pathlib import Path

from seqlm.reporting.build import main

REPO = Path(__file__).resolve().parents[1]


def test_readme_results_are_generated_from_results_dir():
    assert main(["--readme", str(REPO / "README.md"), "--results", str(REPO / "results"), "--check"]) == 0
