"""Benchmarks: scripts that measure, not tests that pass or fail."""
