"""asrserve: a speech-recognition service built on faster-whisper."""

__version__ = "0.1.0"
