"""generate_many (tasks/generate.py): num samples, each from seed + i, and --num checked in the API."""

import pytest

from seqlm.errors import SeqlmError
from seqlm.tasks.generate import generate, generate_many
from seqlm.training.train import train_ngram


@pytest.fixture(scope="module")
def lm(toy_lines):
    return train_ngram(toy_lines[0][:500], order=3)


def test_sample_i_is_generate_with_seed_plus_i(lm):
    many = generate_many(lm, "the", num=3, seed=10, max_tokens=8)
    assert [s["text"] for s in many] == [generate(lm, "the", seed=10 + i, max_tokens=8)["text"] for i in range(3)]
    assert len({s["text"] for s in generate_many(lm, "", num=5, seed=1)}) > 1


@pytest.mark.parametrize("num,error", [(0, SeqlmError), (-2, SeqlmError), (1.5, TypeError)])
def test_num_must_be_a_positive_integer(lm, num, error):
    with pytest.raises(error, match="num must be"):
        generate_many(lm, "the", num=num)


@pytest.mark.parametrize("options,error,match", [
    ({"seed": "a"}, TypeError, "seed must be an int"), ({"seed": -5}, SeqlmError, "--seed must be >= 0"),
    ({"max_tokens": 2.5}, TypeError, "max_tokens must be an int"), ({"top_k": 1.0}, TypeError, "top_k"),
    ({"temperature": "hot"}, TypeError, "temperature must be a number"), ({"num": 0}, SeqlmError, "--num")])
def test_generate_options_are_checked_before_numpy_sees_them(toy_lines, options, error, match):
    from seqlm.tasks.generate import generate_many

    lm = train_ngram(toy_lines[0][:300], order=2)
    with pytest.raises(error, match=match):
        generate_many(lm, "the", **options)
