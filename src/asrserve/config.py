"""Settings for the entry points: defaults < config file < ASRSERVE_* environment < flags.

Only entry points (the CLI, later the server and workers) read this; they turn it into the
engine's plain option dataclasses.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from asrserve.engine.models import DEFAULT_MODEL
from asrserve.engine.options import AudioLimits, BatchingOptions
from asrserve.engine.registry import EngineSettings

CONFIG_ENV = "ASRSERVE_CONFIG"
# The file given with --config, for the duration of one load_settings call: pydantic-settings
# asks for its sources through a classmethod, and the process environment must not be changed.
_config_file: ContextVar[Path | None] = ContextVar("asrserve_config_file", default=None)


class Settings(BaseSettings):
    """Every field is also `ASRSERVE_<FIELD>` in the environment and a key in the TOML file
    named by `ASRSERVE_CONFIG` (or `--config`)."""

    model_config = SettingsConfigDict(env_prefix="ASRSERVE_", extra="ignore")

    model: str = Field(DEFAULT_MODEL, description="Catalogue name, model directory or hub id.")
    model_dir: Path | None = Field(None, description="Where catalogue models are assembled.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field("default", description="int8 on CPU, float16 on CUDA by default.")
    cpu_threads: int = Field(0, ge=0, description="0: every core.")
    batch_seconds: float = Field(240.0, gt=0, description="Most audio seconds in one batch.")
    batch_size: int = Field(16, ge=1, description="Most chunks in one batch.")
    batch_wait_ms: float = Field(10.0, ge=0, description="Wait for a batch to fill.")
    max_audio_seconds: float | None = Field(4 * 3600.0, gt=0)
    max_upload_mb: float | None = Field(1024.0, gt=0)
    log_level: str = "warning"
    log_format: Literal["json", "text"] = "json"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            device=self.device, compute_type=self.compute_type, cpu_threads=self.cpu_threads
        )

    def batching(self) -> BatchingOptions:
        return BatchingOptions(
            max_batch_seconds=self.batch_seconds,
            max_batch_size=self.batch_size,
            max_wait_ms=self.batch_wait_ms,
        )

    def limits(self) -> AudioLimits:
        max_bytes = int(self.max_upload_mb * 1024 * 1024) if self.max_upload_mb else None
        return AudioLimits(max_bytes=max_bytes, max_duration_s=self.max_audio_seconds)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build settings; flags given on the command line (not None) override everything."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"Config file {config_file} does not exist.")
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _config_file.reset(token)
