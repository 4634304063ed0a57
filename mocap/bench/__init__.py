"""Benchmarks run by ``mocap bench`` (figures, not tests)."""
