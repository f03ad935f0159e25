"""Accuracy measurement shared by the test suite, the benchmarks and `asrserve bench`, and the
harness both start real processes with: servers and workers (processes, cluster), Redis and
PostgreSQL (services), a Docker daemon and the Compose stack (docker, compose_stack).

Needs the `eval` extra (jiwer, whisper-normalizer); the service itself never imports it.
"""
