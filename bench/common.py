"""What the benchmarks that compare with KenLM share: a scratch folder, the PTB modified-KN 5-gram (folder and
ARPA file, trained once per scratch folder) and PTB's test sentences."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import seqlm
from seqlm.text.corpora import locate


def seqlm_command() -> str:
    """The ``seqlm`` console script beside this Python (a venv's, as users run it), else the one on PATH: not
    a version manager's shim (pyenv's is a bash script that costs ~50 ms a call before Python starts)."""
    beside = Path(sys.executable).parent / "seqlm"
    return str(beside) if beside.exists() else shutil.which("seqlm") or "seqlm"


def scratch(path: str | None, prefix: str) -> Path:
    """``path`` (created), or a new temporary folder."""
    work = Path(path or tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    return work


def source_scratch(path: str | None, prefix: str) -> Path:
    """:func:`scratch` for a benchmark that keeps the models it trains (``--work``) to reuse them: a subfolder
    named by a hash of seqlm's source (``code-<hash>``), so a model made by other code is never measured as
    this code's (a kept model's trie layout can predate the code that reads it); the subfolders of other
    source versions, which only this function makes, are removed."""
    work = scratch(path, prefix)
    if not path:
        return work
    digest = hashlib.sha256()
    src = Path(__file__).resolve().parents[1] / "src" / "seqlm"
    for f in sorted(src.rglob("*")):
        if f.suffix in (".py", ".pyx") and f.is_file():
            digest.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    here = work / f"code-{digest.hexdigest()[:16]}"
    for old in work.glob("code-*"):
        if old.is_dir() and old != here:
            shutil.rmtree(old)
    here.mkdir(exist_ok=True)
    return here


def ptb_kn5(work: Path) -> tuple[Path, Path]:
    """The PTB 5-gram's model folder and its ARPA file, in ``work`` (trained there if absent)."""
    folder, arpa = work / "kn5", work / "kn5.arpa"
    if not folder.exists():
        seqlm.train("ptb", model="kn", order=5, out=folder, arpa=arpa)
    return folder, arpa


def brown(form: str = "brown") -> dict[str, Path]:
    """The Brown corpus's train/valid/test files (``form``: "brown", tokenised, or "brown-raw", running text),
    in the data folder beside PTB's (``SEQLM_DATA`` or where PTB was found)."""
    folder = Path(os.environ.get("SEQLM_DATA") or Path(locate("ptb")["train"]).parent.parent) / "brown"
    return {s: folder / f"{form}.{s}.txt" for s in ("train", "valid", "test")}


def ptb_test_lines() -> list[str]:
    """PTB's test sentences (blank lines left out)."""
    return [line for line in Path(locate("ptb")["test"]).read_text().splitlines() if line.strip()]


def finish(out: dict, results: str | None, work: Path, keep: bool) -> None:
    """Write ``out`` to ``results`` (if given), remove the scratch folder unless ``keep``, and print ``out``
    as the last line (one JSON object)."""
    import json
    import shutil

    from seqlm.io.files import atomic_write

    if results:
        with atomic_write(results) as f:
            json.dump(out, f, indent=2)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
