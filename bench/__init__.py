"""Benchmarks: `make bench` runs them and prints ours beside each reference."""
