"""The collector parts micro-benchmark runs and fills every row (no figure is judged)."""

from __future__ import annotations

import math

from bench import bench_collector_parts


def test_parts_bench_times_every_part_and_its_reference() -> None:
    rows = bench_collector_parts.run(scale=0.01)

    names = [row.name for row in rows]
    assert any(name.startswith("parse") for name in names)
    assert any(name.startswith("line protocol") for name in names)
    assert any(name.startswith("MQTT 5 PUBLISH decode") for name in names)
    for row in rows:
        assert math.isfinite(row.ours)
        assert row.ours > 0
        assert row.reference is None or row.reference > 0


def test_parts_bench_leaves_pahos_decoder_as_it_found_it() -> None:
    from paho.mqtt import _packet

    before = vars(_packet)["Properties"]
    bench_collector_parts.run(scale=0.01)
    assert vars(_packet)["Properties"] is before
