"""What the app factory needs, as plain values: entry points build it from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asrserve.engine import (
    CATALOGUE,
    DEFAULT_MODEL,
    AudioLimits,
    BatchingOptions,
    EngineSettings,
    LanguageOptions,
)


@dataclass(frozen=True, slots=True)
class ServerOptions:
    default_model: str = DEFAULT_MODEL
    model_dir: Path | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    limits: AudioLimits = field(default_factory=AudioLimits)
    languages: LanguageOptions = field(default_factory=LanguageOptions)
    models_served: tuple[str, ...] = ()
    """Models clients may name; empty means the default model plus the catalogue."""
    api_keys: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_concurrent_requests: int = 16
    """Requests decoding at once. Short requests share decode windows in the batcher, so many
    at once cost little more than one; each holds its decoded audio until it is answered."""
    max_waiting_requests: int = 16
    """Requests queued for a slot at most: what bounds the memory they hold."""
    max_queue_wait_s: float = 30.0
    """A request that would wait longer than this for a slot (by how long recent requests held
    theirs) is refused at once with 429, instead of waiting toward its deadline; 0: no bound."""
    request_timeout_s: float = 600.0
    shutdown_grace_s: float = 30.0
    preload: bool = True
    """Load the default model at start-up, so the first request does not pay for it."""

    @property
    def max_upload_bytes(self) -> int | None:
        """Uploads above this are refused while they arrive: the input limit, read early."""
        return self.limits.max_bytes

    def served(self) -> tuple[str, ...]:
        names = self.models_served or (self.default_model, *CATALOGUE)
        return tuple(dict.fromkeys(names))


# Names OpenAI clients send by habit; they mean "the server's default model".
OPENAI_ALIASES = frozenset({"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "default"})
