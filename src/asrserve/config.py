"""Settings for the entry points: defaults < config file < ASRSERVE_* environment < flags.

Only entry points read this: the CLI commands, the server and the job workers (through
`asrserve.runtime`), which turn it into the plain option dataclasses of the engine, the API,
the stream server and the jobs. Defaults that those dataclasses own are read from them.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from asrserve.api.options import ServerOptions
from asrserve.engine.models import DEFAULT_MODEL
from asrserve.engine.options import (
    AudioLimits,
    BatchingOptions,
    LanguageOptions,
    parse_languages,
)
from asrserve.engine.registry import EngineSettings
from asrserve.jobs.options import JobOptions
from asrserve.ws.load import LoadOptions
from asrserve.ws.options import StreamServerOptions

CONFIG_ENV = "ASRSERVE_CONFIG"
_LANGUAGES = LanguageOptions()  # the defaults' one home
_BATCHING = BatchingOptions()
_ENGINE = EngineSettings()
_SERVER = ServerOptions()
_JOBS = JobOptions()
_STREAMS = StreamServerOptions()
_LOAD = LoadOptions()
_LIMITS = AudioLimits()
_MIB = 1024 * 1024

# The file given with --config, for the duration of one load_settings call: pydantic-settings
# asks for its sources through a classmethod, and the process environment must not be changed.
_config_file: ContextVar[Path | None] = ContextVar("asrserve_config_file", default=None)


class Settings(BaseSettings):
    """Every field is also `ASRSERVE_<FIELD>` in the environment and a key in the TOML file
    named by `ASRSERVE_CONFIG` (or `--config`)."""

    model_config = SettingsConfigDict(env_prefix="ASRSERVE_", extra="ignore")

    model: str = Field(DEFAULT_MODEL, description="Catalogue name, model directory or hub id.")
    model_dir: Path | None = Field(None, description="Where catalogue models are assembled.")
    model_idle_ttl_s: float = Field(
        300.0,
        ge=0,
        description="Unload a model no request has used for this long (the default and the "
        "partial model always stay); 0: never.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field("default", description="int8 on CPU, float16 on CUDA by default.")
    cpu_threads: int = Field(
        _ENGINE.cpu_threads, ge=0, description="Threads per decode worker; 0: the cores shared."
    )
    decode_workers: int = Field(
        _ENGINE.decode_workers,
        ge=1,
        description="Batches a model decodes at once (CTranslate2 workers).",
    )
    batch_seconds: float = Field(
        _BATCHING.max_batch_seconds, gt=0, description="Most audio seconds in one batch."
    )
    batch_size: int = Field(
        _BATCHING.max_batch_size, ge=1, description="Most decode windows in one batch."
    )
    batch_wait_ms: float = Field(
        _BATCHING.max_wait_ms, ge=0, description="Wait this long for the next chunk of a batch."
    )
    batch_hold_ms: float = Field(
        _BATCHING.max_hold_ms, ge=0, description="Wait at most this long for a batch to fill."
    )
    batch_pack_gap_s: float | None = Field(
        _BATCHING.pack_gap_s,
        ge=0,
        description="Silence between short chunks sharing a Whisper window; off: no packing.",
    )
    languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(_LANGUAGES.expected),
        description="Comma list of the languages audio may be in (en,es); empty: any.",
    )
    language_fallback: str | None = Field(
        _LANGUAGES.fallback,
        description="Used below the confidence floor (default: the first of `languages`).",
    )
    language_floor: float = Field(
        _LANGUAGES.floor, ge=0, le=1, description="Detection probability below which to fall back."
    )
    max_audio_seconds: float | None = Field(_LIMITS.max_duration_s, gt=0)
    max_upload_mb: float | None = Field(
        _LIMITS.max_bytes / _MIB if _LIMITS.max_bytes else None, gt=0
    )
    log_level: str = Field("info", description="debug, info, warning, error.")
    log_format: Literal["json", "text"] = "json"

    # The HTTP service
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers).")
    port: int = Field(8000, ge=1, le=65535)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma list of accepted Bearer keys; empty turns authentication off.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma list of origins allowed by CORS ('*' for any)."
    )
    models_served: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models clients may ask for (default: the default model and the catalogue).",
    )
    max_concurrent_requests: int = Field(
        _SERVER.max_concurrent_requests, ge=1, description="Requests decoding at once."
    )
    max_waiting_requests: int = Field(
        _SERVER.max_waiting_requests, ge=0, description="Requests queued beyond that; more get 429."
    )
    request_timeout_s: float = Field(
        _SERVER.request_timeout_s, gt=0, description="A synchronous request's deadline."
    )
    data_dir: Path = Field(
        _JOBS.data_dir, description="Durable state: the SQLite job database and uploads."
    )
    job_store: str = Field(
        _JOBS.store, description="sqlite, or a postgresql:// URL shared by every process."
    )
    job_queue: str = Field(
        _JOBS.queue, description="local (threads of the server), or a redis:// URL (workers)."
    )
    upload_dir: Path | None = Field(
        None, description="Uploads until their job ends (default data_dir/uploads); shared."
    )
    job_workers: int = Field(_JOBS.workers, ge=1, description="Jobs decoded at once.")
    job_retention_hours: float = Field(
        cast(float, _JOBS.retention_s) / 3600, gt=0, description="How long job results are kept."
    )
    job_max_attempts: int = Field(
        _JOBS.max_attempts, ge=1, description="Starts a job gets when its worker keeps dying."
    )
    job_lease_s: float = Field(
        _JOBS.lease_s, gt=0, description="A dead worker's job runs again after about this."
    )
    job_resend_after_s: float = Field(
        _JOBS.resend_after_s, gt=0, description="Send a job's message again after this wait."
    )
    job_max_seconds: float = Field(
        _JOBS.max_job_s, gt=0, description="Longest job; the broker's visibility timeout is above."
    )
    webhook_max_attempts: int = Field(_JOBS.webhook_max_attempts, ge=1)
    webhook_secret: SecretStr | None = Field(
        None, description="Signs webhook deliveries (HMAC-SHA256 of timestamp and body)."
    )
    webhook_allow_private: bool = Field(
        _JOBS.webhook_allow_private,
        description="Allow webhooks to loopback, link-local and private addresses.",
    )
    worker_port: int = Field(
        9464, ge=0, le=65535, description="asrserve worker: /health and /metrics (0: none)."
    )
    shutdown_grace_s: float = Field(
        _SERVER.shutdown_grace_s, ge=0, description="Deadline for in-flight work on SIGTERM."
    )
    partial_model: str = Field(
        _STREAMS.partial_model, description="Live partials: whisper-tiny.en or pocketsphinx-en."
    )
    max_streams: int | Literal["auto"] = Field(
        "auto",
        description="Open WebSocket streams at most; auto: as many as keep up with real time "
        "(new ones are refused while the models fall behind).",
    )
    stream_idle_timeout_s: float = Field(
        _STREAMS.idle_timeout_s, gt=0, description="Close a stream silent this long."
    )
    stream_overloaded_lag_s: float = Field(
        _LOAD.overloaded_lag_s,
        gt=0,
        description="Close a stream this far behind real time with server_overloaded.",
    )
    stream_port: int | None = Field(
        None, ge=1, le=65535, description="Also listen here (FunASR's clients default to 10095)."
    )
    tls_certfile: Path | None = Field(None, description="Serve https/wss with this certificate.")
    tls_keyfile: Path | None = Field(None, description="The certificate's private key.")
    tls_self_signed: bool = Field(False, description="Generate a self-signed certificate.")

    @field_validator("batch_pack_gap_s", mode="before")
    @classmethod
    def _packing_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        # Compose and Helm pass an unset secret as an empty variable: that means unsigned.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("languages", mode="before")
    @classmethod
    def _language_list(cls, value: object) -> object:
        if isinstance(value, str | list | tuple):
            return list(parse_languages(value))
        return value

    @field_validator("api_keys", "cors_origins", "models_served", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

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
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            decode_workers=self.decode_workers,
        )

    def batching(self) -> BatchingOptions:
        return BatchingOptions(
            max_batch_seconds=self.batch_seconds,
            max_batch_size=self.batch_size,
            max_wait_ms=self.batch_wait_ms,
            max_hold_ms=self.batch_hold_ms,
            pack_gap_s=self.batch_pack_gap_s,
        )

    def language_options(self) -> LanguageOptions:
        return LanguageOptions(
            expected=tuple(self.languages),
            fallback=self.language_fallback,
            floor=self.language_floor,
        )

    def server_options(self) -> ServerOptions:
        return ServerOptions(
            default_model=self.model,
            model_dir=self.model_dir,
            engine=self.engine_settings(),
            batching=self.batching(),
            limits=self.limits(),
            languages=self.language_options(),
            models_served=tuple(self.models_served),
            api_keys=tuple(k.get_secret_value() for k in self.api_keys),
            cors_origins=tuple(self.cors_origins),
            max_concurrent_requests=self.max_concurrent_requests,
            max_waiting_requests=self.max_waiting_requests,
            request_timeout_s=self.request_timeout_s,
            shutdown_grace_s=self.shutdown_grace_s,
        )

    def stream_options(self) -> StreamServerOptions:
        return StreamServerOptions(
            final_model=self.model,
            partial_model=self.partial_model,
            max_streams=None if self.max_streams == "auto" else self.max_streams,
            idle_timeout_s=self.stream_idle_timeout_s,
            limits=self.limits(),
            load=LoadOptions(overloaded_lag_s=self.stream_overloaded_lag_s),
        )

    def job_options(self) -> JobOptions:
        return JobOptions(
            store=self.job_store,
            queue=self.job_queue,
            data_dir=self.data_dir,
            upload_dir=self.upload_dir,
            workers=self.job_workers,
            retention_s=self.job_retention_hours * 3600,
            max_attempts=self.job_max_attempts,
            lease_s=self.job_lease_s,
            resend_after_s=self.job_resend_after_s,
            max_job_s=self.job_max_seconds,
            webhook_max_attempts=self.webhook_max_attempts,
            webhook_secret=self.webhook_secret.get_secret_value() if self.webhook_secret else None,
            webhook_allow_private=self.webhook_allow_private,
        )

    def limits(self) -> AudioLimits:
        max_bytes = int(self.max_upload_mb * _MIB) if self.max_upload_mb else None
        return AudioLimits(max_bytes=max_bytes, max_duration_s=self.max_audio_seconds)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; flags given on the command line (not None) override everything."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"Config file {config_file} does not exist.")
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _config_file.reset(token)
