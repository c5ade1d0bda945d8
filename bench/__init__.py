"""Benchmarks: each runs as ``python -m bench.NAME`` and ends with one JSON line of figures."""
