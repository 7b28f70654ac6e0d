"""Errors of the benchmarks."""

from __future__ import annotations

from protocol.errors import MachikadoError


class BenchError(MachikadoError):
    """A benchmark could not measure: a service or node did not come up or never finished."""
