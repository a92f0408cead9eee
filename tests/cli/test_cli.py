import json
import subprocess
import sys

import pytest

from seqlm.cli import main


def run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io

        class FakeStdin(io.TextIOWrapper):
            def isatty(self):
                return False

        monkeypatch.setattr(sys, "stdin", FakeStdin(io.BytesIO(stdin.encode())))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_end_to_end(tmp_path, toy_files, capsys, monkeypatch):
    out = tmp_path / "kn3"
    code, o, e = run(capsys, "train", "--train", str(toy_files["train"]), "--valid", str(toy_files["valid"]),
                     "--model", "kn", "--order", "3", "--out", str(out), "--json")
    assert code == 0, e
    summary = json.loads(o)
    assert summary["model"]["order"] == 3 and summary["valid"]["perplexity"] > 1
    assert {p.name for p in out.iterdir()} == {"config.json", "vocab.json", "trie"}

    code, o, e = run(capsys, "evaluate", str(out), "--file", str(toy_files["test"]), "--json")
    r = json.loads(o)
    assert code == 0 and r["mode"] == "stream" and r["tokens"] > 0 and "perplexity" in r and "oov" in r

    code, o, e = run(capsys, "predict", str(out), "--top-k", "3", stdin="the students opened their\n",
                     monkeypatch=monkeypatch)
    assert code == 0 and "books" in o

    code, o1, _ = run(capsys, "generate", str(out), "--prompt", "the students", "--seed", "1")
    code, o2, _ = run(capsys, "generate", str(out), "--prompt", "the students", "--seed", "1")
    assert o1 == o2 and o1.startswith("the students")

    code, o, _ = run(capsys, "generate", str(out), "--num", "3", "--seed", "1", "--json", "--top-p", "0.9")
    rows = [json.loads(x) for x in o.splitlines()]
    assert len(rows) == 3 and all(r["log_prob"] <= 0 for r in rows)

    code, o, e = run(capsys, "score", str(out), "--json", stdin="there is a cat\ncat a is there\n",
                     monkeypatch=monkeypatch)
    rows = [json.loads(x) for x in o.splitlines()]
    assert code == 0 and len(rows) == 2 and rows[0]["log_prob"] > rows[1]["log_prob"]

    code, o, e = run(capsys, "export", str(out), str(tmp_path / "m.arpa.gz"))
    assert code == 0
    code, o, e = run(capsys, "evaluate", str(tmp_path / "m.arpa.gz"), "--file", str(toy_files["test"]), "--json")
    assert json.loads(o)["perplexity"] == pytest.approx(r["perplexity"], rel=1e-5)


def test_char_model_score(tmp_path, toy_files, capsys, monkeypatch):
    out = tmp_path / "c7"
    code, _, e = run(capsys, "train", "--train", str(toy_files["train"]), "--level", "char", "--lowercase",
                     "--order", "7", "--out", str(out))
    assert code == 0, e
    code, o, _ = run(capsys, "score", str(out), "--json", stdin="THERE IS A\nIHRA S EET\n", monkeypatch=monkeypatch)
    good, bad = [json.loads(x) for x in o.splitlines()]
    assert good["unit"] == "character" and good["log_prob"] > bad["log_prob"] + 10


def test_help_has_examples():
    for cmd in ("train", "evaluate", "score", "predict", "generate", "export", "demo"):
        out = subprocess.run([sys.executable, "-m", "seqlm.cli", cmd, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "examples:" in out.stdout.split("options:")[-1]


@pytest.mark.slow
@pytest.mark.slow
def test_console_script_and_demo():
    out = subprocess.run(["seqlm", "demo", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    books = res["english"]["suggestions"][0]
    assert books["token"] == "books"
    good, bad = res["char"]["scores"]
    assert good["log_prob"] > bad["log_prob"]
    dna = {r["order"]: r["test"] for r in res["dna"]["table"]}
    assert dna[4] < dna[3] and dna[4] < 1.05 * res["dna"]["source_perplexity"]


def test_ptb_acceptance_shape(tmp_path, ptb_dir, capsys, monkeypatch):
    monkeypatch.setenv("SEQLM_DATA", str(ptb_dir))
    out = tmp_path / "kn2"
    assert run(capsys, "train", "--corpus", "ptb", "--model", "kn", "--order", "2", "--out", str(out))[0] == 0
    code, o, _ = run(capsys, "evaluate", str(out), "--corpus", "ptb", "--split", "test", "--json")
    r = json.loads(o)
    assert code == 0 and r["tokens"] == 82430 and r["mode"] == "stream"


def test_score_prints_every_row_in_order_past_a_chunk(tmp_path, toy_files, capsys, monkeypatch):
    """seqlm score writes its lines a chunk at a time (common.write_lines): more lines than a chunk, every row
    the API's, in order, as text, JSON and per token."""
    import seqlm
    from seqlm.cli import common

    monkeypatch.setattr(common.write_lines, "__defaults__", (7,))  # a chunk of 7 lines
    out = tmp_path / "kn3"
    assert main(["-q", "train", "--train", str(toy_files["train"]), "--order", "3", "--out", str(out)]) == 0
    lines = [line for line in toy_files["test"].read_text().splitlines() if line.strip()][:40] + ["zzz qqq"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    rows = seqlm.score(seqlm.load(out), lines, per="token")
    code, o, _ = run(capsys, "score", str(out), "--file", str(tmp_path / "in.txt"))
    assert code == 0 and o == "".join(f"{r['log_prob']:.4f}\t{r['text']}\n" for r in rows)
    code, o, _ = run(capsys, "score", str(out), "--file", str(tmp_path / "in.txt"), "--json")
    assert [json.loads(x) for x in o.splitlines()] == [{k: v for k, v in r.items() if k != "token_log_probs"}
                                                       for r in rows]
    # per token: written by the compiled reader 5 lines at a time, a chunk it declines (as for text it does not
    # read) made from the rows: the same text
    from seqlm.cli import evaluate as cli_evaluate
    from seqlm.models.ngram.model import NGramLM

    monkeypatch.setattr(cli_evaluate, "LISTING_LINES", 5)
    listing = NGramLM.token_listing
    monkeypatch.setattr(NGramLM, "token_listing", lambda self, chunk, mode="sentence":
                        None if lines[12] in chunk else listing(self, chunk, mode))
    code, o, _ = run(capsys, "score", str(out), "--file", str(tmp_path / "in.txt"), "--per", "token")
    expected = "".join(f"{r['log_prob']:.4f}\t{r['text']}\n" + "".join(
        f"\t{t['log_prob']:.4f}\t{t['token']}{'  (OOV)' if t['oov'] else ''}\n" for t in r["token_log_probs"])
        for r in rows)
    assert code == 0 and o == expected and "(OOV)" in o and o.count("</s>") == len(lines)
