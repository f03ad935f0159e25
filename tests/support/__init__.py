"""Helpers shared by the test suite: real media files and waveform comparisons."""
