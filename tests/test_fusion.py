"""The fusion retrieval runs (rag/retrieval/fusion.py), by hand and against the retriever's own ranking."""

import numpy as np
import pytest

from rag.retrieval.fusion import fuse, top_k


def test_fuse_hand_computed():
    dense = np.array([0.9, 0.8, 0.0])
    lexical = np.array([2.0, 8.0, 4.0], dtype=np.float32)  # / max: 0.25, 1.0, 0.5
    got = fuse(dense, lexical, 0.25)
    assert got == pytest.approx([0.75 * 0.9 + 0.25 * 0.25, 0.75 * 0.8 + 0.25 * 1.0, 0.25 * 0.5])
    assert top_k(got, ["a", "b", "c"], 1) == [1]


def test_fuse_adds_the_gloss_channel_by_its_own_maximum():
    dense = np.array([0.5, 0.5])
    got = fuse(dense, np.zeros(2), 0.1, np.array([3.0, 1.0]), 0.03)
    assert got == pytest.approx([0.9 * 0.5 + 0.03, 0.9 * 0.5 + 0.01])


def test_channels_that_matched_nothing_add_nothing():
    dense = np.array([0.7, 0.2])
    assert np.array_equal(fuse(dense, np.zeros(2), 0.3, np.zeros(2), 0.5), 0.7 * dense)
    assert np.array_equal(fuse(dense, np.array([-1.0, 2.0]), 0.5), 0.5 * dense + 0.5 * np.array([0.0, 1.0]))
    assert fuse(np.zeros(0), np.zeros(0), 0.2).shape == (0,)


def test_fuse_weight_extremes_reduce_to_one_side():
    dense = np.array([0.9, 0.8])
    lexical = np.array([1.0, 5.0])
    assert np.array_equal(fuse(dense, lexical, 0.0), dense)
    assert top_k(fuse(dense, lexical, 1.0), ["a", "b"], 2) == [1, 0]


def test_fuse_rejects_bad_weight():
    with pytest.raises(ValueError, match="lexical_weight"):
        fuse(np.zeros(1), np.zeros(1), 1.5)


def test_top_k_ties_broken_by_key_whatever_their_order():
    scores = np.array([1.0, 2.0, 1.0, 1.0])
    keys = ["d", "c", "a", "b"]
    assert top_k(scores, keys, 2) == [1, 2]  # "a" wins the tie for second place, not the first 1.0
    assert top_k(scores, keys, 10) == [1, 2, 3, 0]
    assert top_k(np.zeros(0), [], 3) == []
