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


@pytest.mark.parametrize("num", [0, -2, 1.5])
def test_num_must_be_a_positive_integer(lm, num):
    with pytest.raises(SeqlmError, match="--num must be >= 1"):
        generate_many(lm, "the", num=num)
