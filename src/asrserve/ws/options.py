"""What the stream server needs, as plain values: entry points build it from the settings.

Free of the WebSocket machinery, so the settings (which a job worker reads too) take their
defaults from here without importing a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asrserve.engine import DEFAULT_MODEL, DEFAULT_PARTIAL_MODEL, AudioLimits, StreamingOptions
from asrserve.ws.load import LoadOptions

AUTO_MAX_STREAMS = 256
"""With `max_streams` auto, the load refuses streams long before this; it bounds memory."""


@dataclass(frozen=True, slots=True)
class StreamServerOptions:
    final_model: str = DEFAULT_MODEL
    partial_model: str = DEFAULT_PARTIAL_MODEL
    """Cheap model for live partials: a Whisper name (re-decoding) or pocketsphinx-en. A
    stream in a language it cannot decode gets its partials from `language_partial_models`,
    or else from the final model (greedy, in fitted windows)."""
    language_partial_models: dict[str, str] = field(default_factory=dict)
    """Partial models by stream language (`{"ko": "vosk-ko"}`), before `partial_model`."""
    max_streams: int | None = None
    """Open streams at most; None (`auto`): as many as the live load admits (`load`), up to
    `AUTO_MAX_STREAMS`."""
    idle_timeout_s: float = 300.0
    """A connection that sends nothing for this long is closed (pings keep it alive)."""
    max_frame_bytes: int = 1 << 20
    limits: AudioLimits = field(default_factory=AudioLimits)
    streaming: StreamingOptions = field(default_factory=StreamingOptions)
    load: LoadOptions = field(default_factory=LoadOptions)

    @property
    def partial_models(self) -> frozenset[str]:
        """Every model a stream's partials may come from, the final model aside."""
        names = {self.partial_model, *self.language_partial_models.values()}
        return frozenset(names - {self.final_model})
