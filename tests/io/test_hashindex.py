"""The hash index (io/hashindex.py): built whole or in batches, the same table, the same answers."""


import numpy as np

from seqlm.io import hashindex as ngram_index


def test_index_is_built_the_same_from_batches():
    keys = np.unique(np.random.default_rng(0).integers(0, 1 << 40, 50_000))
    whole = ngram_index.build(keys)
    batched = ngram_index.build_batches(len(keys), (keys[s:s + ngram_index.BATCH] for s in range(0, len(keys), ngram_index.BATCH)))
    assert np.array_equal(whole, batched)
    idx, found = ngram_index.find(whole, keys, keys[::7])
    assert found.all() and np.array_equal(idx, np.arange(0, len(keys), 7))


