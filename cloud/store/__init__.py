"""Stores of record behind one small interface: InfluxDB (v1 and v2 APIs) and embedded SQLite."""

from cloud.store.base import Point, Store

__all__ = ["Point", "Store"]
