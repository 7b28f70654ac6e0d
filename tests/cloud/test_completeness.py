"""Completeness from the seqs the store holds: first, last, received, missing ranges."""

from __future__ import annotations

from cloud.completeness import completeness, gaps


def test_holes_between_first_and_last_are_missing() -> None:
    [s] = completeness({("rr-01", "s" * 8): {3, 4, 5, 8, 10}})
    assert (s.first, s.last, s.received) == (3, 10, 5)
    assert s.missing == ((6, 7), (9, 9))
    assert s.missing_count == 3
    assert not s.complete


def test_over_a_streams_whole_life_seqs_before_the_first_are_missing() -> None:
    [s] = completeness({("rr-01", "s" * 8): {3, 4}}, from_one=True)
    assert s.missing == ((1, 2),)


def test_unbroken_stream_is_complete() -> None:
    [s] = completeness({("rr-01", "s" * 8): set(range(1, 1001))}, from_one=True)
    assert s.complete
    assert s.to_json()["missing"] == []
    assert (s.first, s.last, s.received) == (1, 1000, 1000)


def test_every_stream_is_reported_sorted_and_empty_ones_left_out() -> None:
    report = completeness(
        {
            ("rr-02", "b" * 8): {1},
            ("rr-01", "z" * 8): {2},
            ("rr-01", "a" * 8): {1},
            ("x", "y"): set(),
        }
    )
    assert [(s.node, s.stream) for s in report] == [
        ("rr-01", "a" * 8),
        ("rr-01", "z" * 8),
        ("rr-02", "b" * 8),
    ]


def test_gaps_of_nothing_is_nothing() -> None:
    assert gaps([]) == []
    assert gaps([5], start=1) == [(1, 4)]
