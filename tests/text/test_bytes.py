"""Byte-level tokens and hashes (text/bytes.py)."""


import numpy as np

from seqlm.text import bytes as textbytes


def test_token_hashes_do_not_depend_on_position():
    buf = np.frombuffer(b"  the cat\tsat on the\nmat the", dtype=np.uint8)
    s, e = textbytes.tokens(buf)
    h = textbytes.token_hashes(buf, s, e)
    words = bytes(buf).split()
    assert [w.decode() for w in words] == [bytes(buf[a:b]).decode() for a, b in zip(s, e)]
    assert h[0] == h[4] == h[6] and len(set(h.tolist())) == 5
    np.testing.assert_array_equal(textbytes.hash_words([w.decode() for w in words]), h)


