"""The table of bad inputs: one row per case of the catalogue, each run through the CLI, each asserting
exit status 2, exactly one stderr line ``seqlm: error: ...`` containing the expected words (the fix), no
traceback, every pre-existing file byte-identical, and no file created (no partial output, no temp file)."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import TINY
from seqlm.cli import main


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory, toy_lines):
    """Models and files the rows use (built once; each row works on its own copy)."""
    root = tmp_path_factory.mktemp("built")
    text = root / "text.txt"
    text.write_text("\n".join(toy_lines[0][:400]) + "\n")
    assert main(["-q", "train", "--train", str(text), "--order", "3", "--out", str(root / "kn")]) == 0
    assert main(["-q", "train", "--train", str(text), "--order", "4", "--level", "char", "--out",
                 str(root / "char"), "--arpa", str(root / "char.arpa")]) == 0
    assert main(["-q", "train", "--train", str(text), "--order", "2", "--out", str(root / "kn2")]) == 0
    assert main(["-q", "train", "--train", str(text), "--model", "add-k", "--order", "2", "--out",
                 str(root / "addk")]) == 0
    assert main(["-q", "train", "--train", str(text), "--model", "lstm", "--out", str(root / "run"), "--set",
                 "train.max_steps=3", *sum((["--set", x] for x in TINY), [])]) == 0
    return root


def _edit_json(path: Path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _setup(case: str, d: Path, built: Path) -> None:
    """Prepare the case's folder ``d`` (a copy of the built models is in it)."""
    (d / "user").mkdir()
    (d / "user" / "notes.txt").write_text("my notes\n")
    (d / "afile").write_text("not a folder\n")
    (d / "empty.txt").write_text("\n \n")
    (d / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (d / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (d / "blank-line.txt").write_text("the cat\n\nthe dog\n")
    (d / "other.txt").write_text((d / T).read_text() + "zebra quokka okapi\n" * 50)  # another vocabulary
    (d / "bad.toml").write_text("[model\nkind = 1\n")
    (d / "badsection.toml").write_text("[nonsense]\nx = 1\n")
    (d / "recipes").mkdir()
    (d / "resultsdir").mkdir()
    arpa = (d / "char.arpa").read_text()
    (d / "nodata.arpa").write_text("this is not an arpa file\n")
    (d / "negative.arpa").write_text("\\data\\\nngram 1=-5\n\n\\1-grams:\n\n\\end\\\n")
    (d / "truncated.arpa").write_text(arpa[: len(arpa) // 2])
    lines = arpa.split("\n")
    first = next(i for i, x in enumerate(lines) if x.startswith("-") and "\t" in x and "<seqlm" not in x)
    nan = list(lines)
    nan[first] = "nan\t" + nan[first].split("\t", 1)[1]
    (d / "nan.arpa").write_text("\n".join(nan))
    pos = list(lines)
    pos[first] = "0.5\t" + pos[first].split("\t", 1)[1]
    (d / "positive.arpa").write_text("\n".join(pos))
    # sections out of order: the 2-grams before the 1-grams
    head, rest = arpa.split("\\1-grams:", 1)
    uni, rest = rest.split("\\2-grams:", 1)
    (d / "order.arpa").write_text(head + "\\2-grams:" + rest.split("\\3-grams:", 1)[0] + "\\1-grams:" + uni
                                  + "\\3-grams:" + rest.split("\\3-grams:", 1)[1])
    # a text that turns bad after the first block evaluate reads (it streams files)
    (d / "late-latin1.txt").write_bytes(b"the cat sat\n" * 200_000 + "caf\xe9\n".encode("latin-1"))
    (d / "late-nul.txt").write_bytes(b"the cat sat\n" * 200_000 + b"the\x00cat\n")
    if case == "edited_config":
        _edit_json(d / "kn" / "config.json", order=2)
    if case == "foreign_vocab":
        shutil.copy(d / "char" / "vocab.json", d / "kn" / "vocab.json")
    if case == "config_not_json":
        (d / "kn" / "config.json").write_text("{not json")
    if case == "truncated_tables":
        data = (d / "kn" / "trie" / "order2.npy").read_bytes()
        (d / "kn" / "trie" / "order2.npy").write_bytes(data[: len(data) // 3])
    if case == "missing_tables_file":
        (d / "kn" / "trie" / "base2.npy").unlink()
    if case == "neural_config_wrong_type":
        _edit_json(d / "run" / "model" / "config.json", model={"kind": "lstm", "hidden_size": "big"})
    if case == "unknown_kind_config":
        _edit_json(d / "kn" / "config.json", kind="transformer")


T = "text.txt"
# (case, argv, words the one error line must contain)
CASES = [
    # input files and corpora
    ("missing_train_file", ["train", "--train", "nope.txt", "--out", "o"], "no such file"),
    ("empty_train_file", ["train", "--train", "empty.txt", "--out", "o"], "empty"),
    ("binary_train_file", ["train", "--train", "binary.bin", "--out", "o"], "binary"),
    ("latin1_train_file", ["train", "--train", "latin1.txt", "--out", "o"], "not UTF-8"),
    ("train_file_is_folder", ["train", "--train", "user", "--out", "o"], "is a folder"),
    ("unknown_corpus", ["train", "--corpus", "wiki", "--out", "o"], "unknown corpus"),
    ("corpus_and_files", ["train", "--corpus", "ptb", "--train", T, "--out", "o"], "not both"),
    ("text_and_train", ["train", "--text", T, "--train", T, "--out", "o"], "not both"),
    ("split_ratio_without_text", ["train", "--train", T, "--split-ratio", "0.8,0.1,0.1", "--out", "o"], "--text"),
    ("split_ratio_nan", ["train", "--text", T, "--split-ratio", "nan,1,1", "--out", "o"], "finite"),
    ("split_ratio_two_numbers", ["train", "--text", T, "--split-ratio", "0.8,0.2", "--out", "o"], "three numbers"),
    ("data_dir_not_folder", ["train", "--corpus", "ptb", "--data-dir", "afile", "--out", "o"], "not a folder"),
    # options
    ("order_zero", ["train", "--train", T, "--order", "0", "--out", "o"], "model.order"),
    ("order_huge", ["train", "--train", T, "--order", "20000", "--out", "o"], "between 1 and 32"),
    ("order_not_int", ["train", "--train", T, "--order", "abc", "--out", "o"], "must be an int"),
    ("unknown_model", ["train", "--train", T, "--model", "witten", "--out", "o"], "choose one of"),
    ("memory_not_a_size", ["train", "--train", T, "--memory", "lots", "--out", "o"], "--memory"),
    ("memory_zero", ["train", "--train", T, "--memory", "0G", "--out", "o"], "more than 0"),
    ("memory_for_neural", ["train", "--train", T, "--model", "lstm", "--memory", "4G", "--out", "o"], "does not apply"),
    ("temp_dir_missing", ["train", "--train", T, "--temp-dir", "nowhere", "--out", "o"], "--temp-dir"),
    ("temp_dir_is_file", ["train", "--train", T, "--temp-dir", "afile", "--out", "o"], "--temp-dir"),
    ("binary_train_file_spilling", ["train", "--train", "binary.bin", "--memory", "4K", "--temp-dir", "user",
                                    "--out", "o"], "binary"),
    ("prune_decreasing", ["train", "--train", T, "--prune", "0,3,1", "--out", "o"], "must not decrease"),
    ("prune_not_numbers", ["train", "--train", T, "--prune", "a,b", "--out", "o"], "must be an int"),
    ("addk_k_zero", ["train", "--train", T, "--model", "add-k", "--k", "0", "--out", "o"], "must be > 0"),
    ("addk_k_nan", ["train", "--train", T, "--model", "add-k", "--k", "nan", "--out", "o"], "finite"),
    ("k_for_kn", ["train", "--train", T, "--k", "0.5", "--out", "o"], "pseudo-count of add-k"),
    ("ngram_option_on_lstm", ["train", "--train", T, "--model", "lstm", "--order", "5", "--out", "o"],
     "model.order is for n-gram models"),
    ("neural_option_on_kn", ["train", "--train", T, "--set", "model.hidden_size=100", "--out", "o"],
     "model.hidden_size is for neural models"),
    ("train_option_on_kn", ["train", "--train", T, "--set", "train.epochs=2", "--out", "o"],
     "train.epochs is for neural models"),
    ("backend_on_kn", ["train", "--train", T, "--backend", "reference", "--out", "o"], "is for neural models"),
    ("resume_on_kn", ["train", "--train", T, "--resume", "--out", "kn"], "--resume continues neural"),
    ("overwrite_on_lstm", ["train", "--train", T, "--model", "lstm", "--overwrite", "--out", "o"], "--overwrite"),
    ("arpa_on_lstm", ["train", "--train", T, "--model", "lstm", "--arpa", "x.arpa", "--out", "o"], "--arpa writes"),
    ("threads_negative", ["train", "--train", T, "--model", "lstm", "--set", "train.threads=-1", "--out", "o"],
     "train.threads must be >= 1"),
    ("max_steps_negative", ["train", "--train", T, "--model", "lstm", "--set", "train.max_steps=-5", "--out", "o"],
     "train.max_steps must be >= 1"),
    ("lr_nan", ["train", "--train", T, "--model", "lstm", "--set", "train.lr=nan", "--out", "o"], "finite"),
    ("set_unknown_kind", ["train", "--train", T, "--set", "model.kind=lstmx", "--out", "o"], "choose one of"),
    ("set_no_equals", ["train", "--train", T, "--set", "model.order", "--out", "o"], "section.key=value"),
    ("set_unknown_key", ["train", "--train", T, "--set", "model.nonsense=1", "--out", "o"], "unknown key"),
    ("adaptive_cutoffs_not_increasing", ["train", "--train", T, "--model", "lstm", "--set",
                                         "model.adaptive_cutoffs=30,10", "--out", "o"], "increase strictly"),
    ("adaptive_cutoffs_past_vocabulary", ["train", "--train", T, "--model", "lstm", "--set",
                                          "model.adaptive_cutoffs=5,100000", "--out", "o"], "below the vocabulary size"),
    ("ar_on_window_model", ["train", "--train", T, "--model", "window", "--set", "train.ar=2", "--out", "o"],
     "regularise a recurrent layer"),
    ("nce_with_adaptive_softmax", ["train", "--train", T, "--model", "lstm", "--set", "train.loss=nce", "--set",
                                   "model.adaptive_cutoffs=10", "--out", "o"], "full softmax output"),
    ("mogrifier_rounds_on_lstm", ["train", "--train", T, "--model", "lstm", "--set", "model.mogrifier_rounds=3",
                                  "--out", "o"], "does not apply to lstm"),
    ("unknown_average_mode", ["train", "--train", T, "--model", "lstm", "--set", "train.average=swa", "--out", "o"],
     "train.average must be one of"),
    ("mix_one_model", ["mix", T, "--out", "o"], "at least two"),
    ("set_wrong_type", ["train", "--train", T, "--model", "lstm", "--set", "model.hidden_size=big", "--out", "o"],
     "must be an int"),
    ("precision_fp16", ["train", "--train", T, "--model", "lstm", "--precision", "fp16", "--out", "o"],
     "fp32 or bf16"),
    ("device_tpu", ["train", "--train", T, "--model", "lstm", "--device", "tpu", "--out", "o"], "unknown device"),
    ("window_reference", ["train", "--train", T, "--model", "window", "--backend", "reference", "--out", "o"],
     "no 'reference' backend"),
    ("min_count_zero", ["train", "--train", T, "--min-count", "0", "--out", "o"], "min_count"),
    ("max_size_zero", ["train", "--train", T, "--max-size", "0", "--out", "o"], "max_size"),
    ("level_unknown", ["train", "--train", T, "--level", "klingon", "--out", "o"], "word, char, bpe, unigram, byte"),
    # recipes
    ("recipe_missing", ["train", "nope.toml", "--out", "o"], "no such recipe"),
    ("recipe_is_folder", ["train", "recipes", "--out", "o"], "is a folder"),
    ("recipe_bad_toml", ["train", "bad.toml", "--out", "o"], "not valid TOML"),
    ("recipe_unknown_section", ["train", "badsection.toml", "--out", "o"], "unknown section"),
    # outputs: nothing lost, nothing half-written
    ("out_is_file", ["train", "--train", T, "--out", "afile"], "not a folder"),
    ("out_holds_user_files", ["train", "--train", T, "--out", "user"], "files seqlm did not write"),
    ("out_holds_ngram", ["train", "--train", T, "--out", "kn"], "--overwrite"),
    ("out_is_cwd_like", ["train", "--train", T, "--out", "."], "files seqlm did not write"),
    ("ngram_over_run", ["train", "--train", T, "--overwrite", "--out", "run"], "neural training run"),
    ("neural_over_ngram", ["train", "--train", T, "--model", "lstm", "--out", "kn"], "n-gram model"),
    ("run_without_resume", ["train", "--train", T, "--model", "lstm", "--out", "run"], "--resume"),
    ("resume_nothing", ["train", "--train", T, "--model", "lstm", "--resume", "--out", "o"], "nothing to resume"),
    ("resume_other_data", ["train", "--train", "other.txt", "--model", "lstm", "--resume", "--out", "run",
                           "--set", "train.max_steps=3", *sum((["--set", x] for x in TINY), [])],
     "comes from another model or vocabulary"),
    ("out_same_as_arpa", ["train", "--train", T, "--out", "x", "--arpa", "x"], "same path"),
    ("results_is_folder", ["train", "--train", T, "--out", "o", "--results", "resultsdir"], "is a folder"),
    ("arpa_under_a_file", ["train", "--train", T, "--out", "o", "--arpa", "afile/m.arpa"], "is a file, not a folder"),
    ("addk_arpa", ["train", "--train", T, "--model", "add-k", "--order", "2", "--out", "o", "--arpa", "a.arpa"],
     "cannot be written as ARPA"),
    ("quantize_out_of_range", ["train", "--train", T, "--quantize", "0", "--out", "o"], "1 to 16 bits"),
    ("quantize_neural", ["train", "--train", T, "--model", "lstm", "--quantize", "8", "--out", "o"], "n-gram models"),
    ("convert_neural", ["convert", "run", "o"], "only n-gram models"),
    # model files
    ("model_missing", ["evaluate", "nope", "--file", T], "no such model"),
    ("truncated_tables", ["evaluate", "kn", "--file", T], "truncated or modified"),
    ("missing_tables_file", ["evaluate", "kn", "--file", T], "is missing"),
    ("edited_config", ["evaluate", "kn", "--file", T], "edited"),
    ("foreign_vocab", ["predict", "kn", "--prompt", "the"], "checksum"),
    ("config_not_json", ["evaluate", "kn", "--file", T], "not valid JSON"),
    ("unknown_kind_config", ["evaluate", "kn", "--file", T], "unknown model kind"),
    ("out_under_a_file", ["train", "--train", T, "--out", "afile/o"], "is a file, not a folder"),
    ("neural_config_wrong_type", ["evaluate", "run", "--file", T], "edited"),
    ("arpa_no_data", ["evaluate", "nodata.arpa", "--file", T], "\\data\\"),
    ("arpa_negative_count", ["evaluate", "negative.arpa", "--file", T], "the count >= 0"),
    ("arpa_truncated", ["evaluate", "truncated.arpa", "--file", T], "truncated"),
    ("arpa_nan", ["evaluate", "nan.arpa", "--file", T], "must be <= 0"),
    ("arpa_positive_prob", ["evaluate", "positive.arpa", "--file", T], "must be <= 0"),
    ("arpa_sections_out_of_order", ["evaluate", "order.arpa", "--file", T], "out of order"),
    ("eval_file_latin1_late", ["evaluate", "kn", "--file", "late-latin1.txt"], "not UTF-8"),
    ("eval_file_nul_late", ["evaluate", "kn", "--file", "late-nul.txt"], "binary"),
    ("arpa_level_conflict", ["evaluate", "char.arpa", "--level", "word", "--file", T], "char-level"),
    ("level_on_folder", ["evaluate", "kn", "--level", "char", "--file", T], "ARPA files only"),
    # evaluate, score, predict, generate, export
    ("file_and_corpus", ["evaluate", "kn", "--file", T, "--corpus", "ptb"], "not both"),
    ("nothing_to_evaluate", ["evaluate", "kn"], "nothing to evaluate"),
    ("eval_mode_bogus", ["evaluate", "kn", "--file", T, "--mode", "bogus"], "invalid choice"),
    ("score_blank_line", ["score", "kn", "--file", "blank-line.txt"], "line 2 is empty"),
    ("score_missing_file", ["score", "kn", "--file", "nope.txt"], "no such file"),
    ("score_per_bogus", ["score", "kn", "--file", T, "--per", "word"], "invalid choice"),
    ("predict_top_k_zero", ["predict", "kn", "--prompt", "the", "--top-k", "0"], "--top-k"),
    ("generate_temperature_nan", ["generate", "kn", "--temperature", "nan"], "--temperature"),
    ("generate_negative_seed", ["generate", "kn", "--seed", "-5"], "--seed must be >= 0"),
    ("min_count_keeps_nothing", ["train", "--train", T, "--min-count", "1000000000", "--out", "o"], "keeps no token"),
    ("model_file_for_folder", ["evaluate", "kn/config.json", "--file", T], "give the folder"),
    ("generate_temperature_tiny", ["generate", "kn", "--temperature", "1e-308"], "--temperature"),
    ("generate_top_p_nan", ["generate", "kn", "--top-p", "nan"], "--top-p"),
    ("generate_num_zero", ["generate", "kn", "--num", "0"], "--num"),
    ("generate_max_tokens_zero", ["generate", "kn", "--max-tokens", "0"], "--max-tokens"),
    ("generate_unknown_prompt", ["generate", "kn", "--prompt", "qqq zzz"], "outside the model's vocabulary"),
    ("export_neural", ["export", "run", "x.arpa"], "only n-gram models can"),
    ("export_addk", ["export", "addk", "x.arpa"], "cannot be written as ARPA"),
    ("export_to_folder", ["export", "kn", "user"], "is a folder"),
    # an output named after an input, or over a file seqlm did not write (io/files.check_target)
    ("arpa_is_the_training_text", ["train", "--train", T, "--out", "o", "--arpa", T], "also an input"),
    ("arpa_over_a_user_file", ["train", "--train", T, "--out", "o", "--arpa", "user/notes.txt"],
     "seqlm did not write it: add --overwrite"),
    ("results_over_a_user_file", ["train", "--train", T, "--out", "o", "--results", "user/notes.txt"],
     "seqlm did not write it"),
    ("export_over_a_user_file", ["export", "kn", "user/notes.txt"], "seqlm did not write it: add --overwrite"),
    ("export_over_its_input", ["export", "char.arpa", "char.arpa"], "also an input"),
    ("mix_results_over_a_user_file", ["mix", "kn", "kn2", "--weights", "0.5,0.5", "--out", "o", "--results",
                                      "user/notes.txt"], "seqlm did not write it: remove it yourself"),
    ("export_under_a_file", ["export", "kn", "afile/x.arpa"], "cannot write"),
    ("unknown_option", ["train", "--out", "o", "--bogus"], "unrecognized arguments"),
]


def test_the_table_is_large():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, argv, words, built, tmp_path, capsys, monkeypatch):
    d = tmp_path / "w"
    shutil.copytree(built, d)
    _setup(case, d, built)
    monkeypatch.chdir(d)
    monkeypatch.setenv("SEQLM_DATA", str(d / "nodata"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(d / "nocache"))
    before = snapshot(d)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlm: error: "), err
    assert words in lines[0], lines[0]
    after = snapshot(d)
    assert after == before, sorted(set(after) ^ set(before)) or "a file changed"
