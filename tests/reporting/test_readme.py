
from conftest import REPO  # noqa: E402
from seqlm.reporting.build import main


def test_readme_results_are_generated_from_results_dir():
    assert main(["--readme", str(REPO / "README.md"), "--results", str(REPO / "results"), "--check"]) == 0
