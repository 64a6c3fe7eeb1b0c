import pytest

from rag.fusion import convex_fuse, max_normalise, minmax_normalise, rank, rrf


def test_rrf_hand_computed():
    got = rrf([["a", "b"], ["b", "c"]], k=60)
    assert got["a"] == pytest.approx(1 / 61)
    assert got["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert got["c"] == pytest.approx(1 / 62)
    assert [key for key, _ in rank(got)] == ["b", "a", "c"]


def test_normalisers():
    assert max_normalise({"a": 4.0, "b": 1.0, "c": 0.0}) == {"a": 1.0, "b": 0.25, "c": 0.0}
    assert max_normalise({"a": 0.0}) == {"a": 0.0}
    assert minmax_normalise({"a": 3.0, "b": 1.0, "c": 2.0}) == {"a": 1.0, "b": 0.0, "c": 0.5}
    assert minmax_normalise({"a": 2.0, "b": 2.0}) == {"a": 1.0, "b": 1.0}
    assert minmax_normalise({}) == {}


def test_convex_fuse_hand_computed():
    dense = {"a": 0.9, "b": 0.8}
    lexical = {"a": 2.0, "b": 8.0, "c": 4.0}
    got = convex_fuse(dense, lexical, 0.25)
    # lexical / max: a 0.25, b 1.0, c 0.5
    assert got["a"] == pytest.approx(0.75 * 0.9 + 0.25 * 0.25)
    assert got["b"] == pytest.approx(0.75 * 0.8 + 0.25 * 1.0)
    assert got["c"] == pytest.approx(0.25 * 0.5)
    assert rank(got)[0][0] == "b"


def test_convex_fuse_weight_extremes_reduce_to_one_side():
    dense = {"a": 0.9, "b": 0.8}
    lexical = {"a": 1.0, "b": 5.0}
    assert convex_fuse(dense, lexical, 0.0) == pytest.approx(dense)
    assert rank(convex_fuse(dense, lexical, 1.0))[0][0] == "b"


def test_convex_fuse_rejects_bad_weight():
    with pytest.raises(ValueError, match="lexical_weight"):
        convex_fuse({}, {}, 1.5)


def test_rank_ties_broken_by_key():
    assert rank({"b": 1.0, "a": 1.0, "c": 2.0}) == [("c", 2.0), ("a", 1.0), ("b", 1.0)]
    assert rank({"b": 1.0, "a": 1.0}, k=1) == [("a", 1.0)]
