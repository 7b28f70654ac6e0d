"""SqliteStore, the embedded default: upserts, durability settings, exact values, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.errors import PointsRejected, StoreError, StoreUnavailable
from cloud.store.base import FieldValue, Point
from cloud.store.sqlite import SqliteStore

T = 1_764_140_400_000_000_000


def test_the_same_point_written_twice_is_stored_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    point = Point("visit", {"node": "rr-01", "site": "s"}, {"d": 1.5}, T)
    store.write([point])
    store.write([point, Point("visit", {"site": "s", "node": "rr-01"}, {"d": 1.5}, T)])
    assert store.count("visit", by=None) == {"": 1}
    store.close()


def test_a_point_written_again_overwrites_its_fields_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write([Point("visit", {"node": "rr-01"}, {"d": 1.5, "stall": "a"}, T)])
    store.write([Point("visit", {"node": "rr-01"}, {"d": 2.5, "ok": True}, T)])
    (row,) = store.latest("visit")
    assert row.fields == {"d": 2.5, "stall": "a", "ok": True}
    store.close()


def test_points_differing_only_in_a_tag_are_two_series(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write([Point("visit", {"node": "rr-01", "stall": s}, {"d": 1.0}, T) for s in "12"])
    assert store.count("visit", by="stall") == {"1": 1, "2": 1}
    store.close()


def test_values_read_back_exactly_after_reopening(tmp_path: Path) -> None:
    fields: dict[str, FieldValue] = {
        "f": 0.1 + 0.2,
        "tiny": 5e-324,
        "big": -(2**63),
        "yes": True,
        "text": '改行\n"quote" \\ back\\',
        "whole": 3.0,
    }
    tags = {"k": "a,b=c d\\", "駅": "つくば"}
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write([Point("m e,x", tags, fields, T)])
    store.close()
    reopened = SqliteStore(tmp_path / "s.sqlite")
    (row,) = reopened.latest("m e,x", by="k")
    assert row.tags == tags
    assert row.fields == fields
    assert {k: type(v) for k, v in row.fields.items()} == {k: type(v) for k, v in fields.items()}
    reopened.close()


def test_the_file_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write([Point("m", {}, {"v": 1}, T)])
    db = sqlite3.connect(tmp_path / "s.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    store.close()


def test_unstorable_values_are_rejected_and_nothing_of_the_batch_is_written(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    with pytest.raises(PointsRejected) as caught:
        store.write(
            [
                Point("m", {}, {"v": 1}, T),
                Point("m", {}, {"v": float("inf")}, T + 1),
                Point("m", {}, {"v": 2**64}, T + 2),
            ]
        )
    assert len(caught.value.reasons) == 2
    assert store.count("m", by=None) == {}
    store.close()


def test_a_file_locked_by_another_writer_is_unavailable_then_writable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite", timeout_s=0.05)
    other = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailable, match="locked"):
        store.write([Point("m", {}, {"v": 1}, T)])
    other.execute("COMMIT")
    other.close()
    store.write([Point("m", {}, {"v": 1}, T)])
    assert store.count("m", by=None) == {"": 1}
    store.close()


def test_a_file_from_a_newer_machikado_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreError, match="schema 99"):
        SqliteStore(tmp_path / "s.sqlite")


def test_a_bad_grouping_tag_is_named(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    with pytest.raises(StoreError, match="tag 'no de'"):
        store.count("m", by="no de")
    store.close()


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
_VALUE = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
)


@settings(max_examples=100, deadline=None)
@given(
    measurement=_TEXT,
    tags=st.dictionaries(_TEXT, _TEXT, max_size=4),
    fields=st.dictionaries(_TEXT, _VALUE, min_size=1, max_size=5),
    time_ns=st.integers(min_value=-(2**62), max_value=2**62),
)
def test_any_text_and_value_reads_back_exactly(
    measurement: str, tags: dict[str, str], fields: dict[str, FieldValue], time_ns: int
) -> None:
    store = SqliteStore(":memory:")
    store.write([Point(measurement, {**tags, "node": "n"}, fields, time_ns)])
    (row,) = store.latest(measurement)
    assert (row.time_ns, row.tags) == (time_ns, {**tags, "node": "n"})
    assert {k: (type(v), v) for k, v in row.fields.items()} == {
        k: (type(v), v) for k, v in fields.items()
    }
    store.close()
