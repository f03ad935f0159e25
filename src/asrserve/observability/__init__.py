"""Metrics and structured logs; every entry point sets them up, nothing else does."""
