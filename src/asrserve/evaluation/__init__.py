"""Accuracy measurement shared by the test suite, the benchmarks and `asrserve bench`.

Needs the `eval` extra (jiwer, whisper-normalizer); the service itself never imports it.
"""
