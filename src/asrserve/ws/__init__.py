"""FunASR-compatible real-time WebSocket service over the engine's TwoPassSession."""
