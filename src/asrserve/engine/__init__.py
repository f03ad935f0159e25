"""The asrserve engine: a library of numpy arrays and dataclasses with no transport in it."""
