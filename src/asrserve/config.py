"""Settings for the entry points: defaults < config file < ASRSERVE_* environment < flags.

Only entry points read this: the CLI commands, the server and the job workers (through
`asrserve.runtime`), which turn it into the plain option dataclasses of the engine, the API,
the stream server and the jobs. The settings are flat (`ASRSERVE_BATCH_SECONDS`, the names
users, Compose and Helm set); each is marked with the option field it fills (`Into`), takes
its default from that option type, and the option objects are built from the marks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from asrserve.api.options import ServerOptions
from asrserve.engine import (
    AudioLimits,
    BatchingOptions,
    EngineSettings,
    LanguageOptions,
    StreamingOptions,
    parse_languages,
)
from asrserve.jobs.options import JobOptions
from asrserve.ws.load import LoadOptions
from asrserve.ws.options import StreamServerOptions

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

CONFIG_ENV = "ASRSERVE_CONFIG"
_MIB = 1024 * 1024
_HOUR = 3600.0
Options = TypeVar("Options", bound="DataclassInstance")

# The file given with --config, for the duration of one load_settings call: pydantic-settings
# asks for its sources through a classmethod, and the process environment must not be changed.
_config_file: ContextVar[Path | None] = ContextVar("asrserve_config_file", default=None)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Into:
    """Marks a flat setting as the field `name` of the option type `owner`: the setting's
    default is `to_setting(owner().name)` and the option gets `to_option(setting)`."""

    owner: type
    name: str
    to_option: Callable[[Any], Any] = _same
    to_setting: Callable[[Any], Any] = _same

    def default(self) -> Any:
        return self.to_setting(getattr(self.owner(), self.name))


def _setting(*marks: Into, **field: Any) -> Any:
    """A pydantic Field that fills the option fields `marks`, with the first one's default
    (one home per default)."""
    info = Field(marks[0].default(), **field)
    info.metadata.extend(marks)
    return info


def _mb_to_bytes(mb: float | None) -> int | None:
    return int(mb * _MIB) if mb else None


def _bytes_to_mb(size: int | None) -> float | None:
    return size / _MIB if size else None


def _hours_to_s(hours: float | None) -> float | None:
    return hours * _HOUR if hours is not None else None


def _s_to_hours(seconds: float | None) -> float | None:
    return seconds / _HOUR if seconds is not None else None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _secrets(values: list[SecretStr]) -> tuple[str, ...]:
    return tuple(value.get_secret_value() for value in values)


def _zero_is_none(value: int) -> int | None:
    return value or None


def _none_is_zero(value: int | None) -> int:
    return value or 0


def _auto_is_none(value: int | str) -> int | None:
    return None if value == "auto" else int(value)


def _none_is_auto(value: int | None) -> int | str:
    return "auto" if value is None else value


# Option fields deliberately not settings: tuning that only tests and benchmarks change, and
# fields the entry points set in code.
_UNSET: dict[type, set[str]] = {
    EngineSettings: {"cpu_nice"},
    LanguageOptions: {"detection_chunks"},
    ServerOptions: {"preload"},
    StreamServerOptions: {"max_frame_bytes"},
    StreamingOptions: {
        "mode",
        "partial_interval_s",
        "partial_fitted_pad_s",
        "online_final_beam_size",
        "final_fitted_pad_s",
        "final_fitted_min_s",
        "endpointing",
        "max_offline_s",
        "itn",
        "settle_probability",
    },
    LoadOptions: {
        "fewer_partials_lag_s",
        "partial_interval_factor",
        "finals_only_lag_s",
        "refuse_lag_s",
        "hold_s",
        "capacity_busy_share",
        "capacity_window_s",
        "capacity_min_audio_s",
    },
    JobOptions: {"queue_name"},
}


class Settings(BaseSettings):
    """Every field is also `ASRSERVE_<FIELD>` in the environment and a key in the TOML file
    named by `ASRSERVE_CONFIG` (or `--config`)."""

    model_config = SettingsConfigDict(env_prefix="ASRSERVE_", extra="ignore")

    model: str = _setting(
        Into(ServerOptions, "default_model"),
        Into(StreamServerOptions, "final_model"),
        description="Catalogue name, model directory or hub id.",
    )
    model_dir: Path | None = _setting(
        Into(ServerOptions, "model_dir"), description="Where catalogue models are assembled."
    )
    model_idle_ttl_s: float = Field(
        300.0,
        ge=0,
        description="Unload a model no request has used for this long (the default and the "
        "partial model always stay); 0: never.",
    )
    device: Literal["auto", "cpu", "cuda"] = _setting(Into(EngineSettings, "device"))
    compute_type: str = _setting(
        Into(EngineSettings, "compute_type"), description="int8 on CPU, float16 on CUDA by default."
    )
    cpu_threads: int = _setting(
        Into(EngineSettings, "cpu_threads"),
        ge=0,
        description="Threads per decode worker; 0: the cores shared.",
    )
    decode_workers: int = _setting(
        Into(EngineSettings, "decode_workers"),
        ge=1,
        description="Batches a model decodes at once (CTranslate2 workers).",
    )
    partial_decode_workers: int | None = Field(
        None, ge=1, description="decode_workers of the live partial model (default: the same)."
    )
    partial_cpu_threads: int | None = Field(
        None, ge=0, description="cpu_threads of the live partial model (default: the same)."
    )
    partial_cpu_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="Niceness of the live partial model's decode threads (Linux): above 0, "
        "finals take the cores first.",
    )
    batch_seconds: float = _setting(
        Into(BatchingOptions, "max_batch_seconds"),
        gt=0,
        description="Most audio seconds in one batch.",
    )
    batch_size: int = _setting(
        Into(BatchingOptions, "max_batch_size"),
        ge=1,
        description="Most decode windows in one batch.",
    )
    batch_wait_ms: float = _setting(
        Into(BatchingOptions, "max_wait_ms"),
        ge=0,
        description="Wait this long for the next chunk of a batch.",
    )
    batch_hold_ms: float = _setting(
        Into(BatchingOptions, "max_hold_ms"),
        ge=0,
        description="Wait at most this long for a batch to fill.",
    )
    batch_pack_gap_s: float | None = _setting(
        Into(BatchingOptions, "pack_gap_s"),
        ge=0,
        description="Silence between short chunks sharing a Whisper window; off: no packing.",
    )
    languages: Annotated[list[str], NoDecode] = _setting(
        Into(LanguageOptions, "expected", tuple, list),
        description="Comma list of the languages audio may be in (en,es); empty: any.",
    )
    language_fallback: str | None = _setting(
        Into(LanguageOptions, "fallback"),
        description="Used below the confidence floor (default: the first of `languages`).",
    )
    language_floor: float = _setting(
        Into(LanguageOptions, "floor"),
        ge=0,
        le=1,
        description="Detection probability below which to fall back.",
    )
    max_audio_seconds: float | None = _setting(Into(AudioLimits, "max_duration_s"), gt=0)
    max_upload_mb: float | None = _setting(
        Into(AudioLimits, "max_bytes", _mb_to_bytes, _bytes_to_mb), gt=0
    )
    log_level: str = Field("info", description="debug, info, warning, error.")
    log_format: Literal["json", "text"] = "json"

    # The HTTP service
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers).")
    port: int = Field(8000, ge=1, le=65535)
    api_keys: Annotated[list[SecretStr], NoDecode] = _setting(
        Into(ServerOptions, "api_keys", _secrets, list),
        description="Comma list of accepted Bearer keys; empty turns authentication off.",
    )
    cors_origins: Annotated[list[str], NoDecode] = _setting(
        Into(ServerOptions, "cors_origins", tuple, list),
        description="Comma list of origins allowed by CORS ('*' for any).",
    )
    models_served: Annotated[list[str], NoDecode] = _setting(
        Into(ServerOptions, "models_served", tuple, list),
        description="Models clients may ask for (default: the default model and the catalogue).",
    )
    max_concurrent_requests: int = _setting(
        Into(ServerOptions, "max_concurrent_requests"),
        ge=1,
        description="Requests decoding at once.",
    )
    max_waiting_requests: int = _setting(
        Into(ServerOptions, "max_waiting_requests"),
        ge=0,
        description="Requests queued beyond that; more get 429.",
    )
    max_queue_wait_s: float = _setting(
        Into(ServerOptions, "max_queue_wait_s"),
        ge=0,
        description="A request that would wait longer for a slot (by recent requests' decode "
        "times) gets 429 at once; 0 turns the bound off.",
    )
    request_timeout_s: float = _setting(
        Into(ServerOptions, "request_timeout_s"),
        gt=0,
        description="A synchronous request's deadline.",
    )
    data_dir: Path = _setting(
        Into(JobOptions, "data_dir"),
        description="Durable state: the SQLite job database and uploads.",
    )
    job_store: str = _setting(
        Into(JobOptions, "store"),
        description="sqlite, or a postgresql:// URL shared by every process.",
    )
    job_queue: str = _setting(
        Into(JobOptions, "queue"),
        description="local (threads of the server), or a redis:// URL (workers).",
    )
    upload_dir: Path | None = _setting(
        Into(JobOptions, "upload_dir"),
        description="Uploads until their job ends (default data_dir/uploads); shared.",
    )
    job_workers: int = _setting(
        Into(JobOptions, "workers"), ge=1, description="Jobs decoded at once."
    )
    job_retention_hours: float = _setting(
        Into(JobOptions, "retention_s", _hours_to_s, _s_to_hours),
        gt=0,
        description="How long job results are kept.",
    )
    job_max_attempts: int = _setting(
        Into(JobOptions, "max_attempts"),
        ge=1,
        description="Starts a job gets when its worker keeps dying.",
    )
    job_lease_s: float = _setting(
        Into(JobOptions, "lease_s"),
        gt=0,
        description="A dead worker's job runs again after about this.",
    )
    job_resend_after_s: float = _setting(
        Into(JobOptions, "resend_after_s"),
        gt=0,
        description="Send a job's message again after this wait.",
    )
    job_max_seconds: float = _setting(
        Into(JobOptions, "max_job_s"),
        gt=0,
        description="Longest job; the broker's visibility timeout is above.",
    )
    webhook_max_attempts: int = _setting(Into(JobOptions, "webhook_max_attempts"), ge=1)
    webhook_secret: SecretStr | None = _setting(
        Into(JobOptions, "webhook_secret", _secret),
        description="Signs webhook deliveries (HMAC-SHA256 of timestamp and body).",
    )
    webhook_allow_private: bool = _setting(
        Into(JobOptions, "webhook_allow_private"),
        description="Allow webhooks to loopback, link-local and private addresses.",
    )
    worker_port: int = Field(
        9464, ge=0, le=65535, description="asrserve worker: /health and /metrics (0: none)."
    )
    shutdown_grace_s: float = _setting(
        Into(ServerOptions, "shutdown_grace_s"),
        ge=0,
        description="Deadline for in-flight work on SIGTERM.",
    )
    partial_model: str = _setting(
        Into(StreamServerOptions, "partial_model"),
        description="Live partials: whisper-tiny.en, or pocketsphinx-en (incremental, but it "
        "holds the GIL: a few streams at most).",
    )
    language_partial_models: Annotated[dict[str, str], NoDecode] = _setting(
        Into(StreamServerOptions, "language_partial_models", dict, dict),
        description="Live partial models by stream language (ko=vosk-ko,es=whisper-base); "
        "a language partial_model cannot decode gets the final model's.",
    )
    max_streams: int | Literal["auto"] = _setting(
        Into(StreamServerOptions, "max_streams", _auto_is_none, _none_is_auto),
        description="Open WebSocket streams at most; auto: as many as keep up with real time "
        "(new ones are refused while the models fall behind).",
    )
    stream_idle_timeout_s: float = _setting(
        Into(StreamServerOptions, "idle_timeout_s"),
        gt=0,
        description="Close a stream silent this long.",
    )
    stream_overloaded_lag_s: float = _setting(
        Into(LoadOptions, "overloaded_lag_s"),
        gt=0,
        description="Close a stream this far behind real time with server_overloaded.",
    )
    stream_shed_lag_s: float = _setting(
        Into(LoadOptions, "shed_lag_s"),
        gt=0,
        description="While two streams are this far behind and not catching up, close the "
        "newest (server_overloaded) so that the others keep up.",
    )
    stream_shed_every_s: float = _setting(
        Into(LoadOptions, "shed_every_s"),
        gt=0,
        description="Close one stream at most this often to shed load.",
    )
    stream_early_final_ms: int = _setting(
        Into(StreamingOptions, "early_final_ms", _zero_is_none, _none_is_zero),
        ge=0,
        description="Start an utterance's final decoding once its pause is this long, before "
        "the endpoint ends it (the same final, sooner; wasted if speech goes on); 0: at the "
        "endpoint. Only while nothing is behind and fewer streams are open than live RTF "
        "says fit.",
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

    @field_validator("language_partial_models", mode="before")
    @classmethod
    def _language_map(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep or not lang.strip() or not model.strip() for lang, sep, model in pairs):
            raise ValueError("language_partial_models takes language=model pairs, e.g. ko=vosk-ko")
        return {lang.strip(): model.strip() for lang, _, model in pairs}

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

    @classmethod
    def marks(cls) -> Iterator[tuple[str, Into]]:
        """(setting, the option field it fills) for every marked setting."""
        for name, info in cls.model_fields.items():
            for mark in info.metadata:
                if isinstance(mark, Into):
                    yield name, mark

    def options(self, owner: type[Options], **nested: Any) -> Options:
        """An `owner` built from the settings marked for it, and the `nested` option objects
        (or derived values) that no single setting fills."""
        values = {
            m.name: m.to_option(getattr(self, s)) for s, m in self.marks() if m.owner is owner
        }
        missing = {f.name for f in fields(owner)} - values.keys() - nested.keys()
        if missing - _UNSET.get(owner, set()):
            raise TypeError(f"{owner.__name__} fields no setting fills: {sorted(missing)}")
        return owner(**values, **nested)

    def engine_settings(self) -> EngineSettings:
        return self.options(EngineSettings)

    def partial_engine_settings(self) -> EngineSettings:
        """The partial model's engine layout: the models' own, but for what is set for it."""
        models = self.engine_settings()
        return replace(
            models,
            decode_workers=self.partial_decode_workers or models.decode_workers,
            cpu_nice=self.partial_cpu_nice,
            cpu_threads=models.cpu_threads
            if self.partial_cpu_threads is None
            else self.partial_cpu_threads,
        )

    def batching(self) -> BatchingOptions:
        return self.options(BatchingOptions)

    def language_options(self) -> LanguageOptions:
        return self.options(LanguageOptions)

    def limits(self) -> AudioLimits:
        return self.options(AudioLimits)

    def server_options(self) -> ServerOptions:
        return self.options(
            ServerOptions,
            engine=self.engine_settings(),
            batching=self.batching(),
            limits=self.limits(),
            languages=self.language_options(),
        )

    def stream_options(self) -> StreamServerOptions:
        return self.options(
            StreamServerOptions,
            limits=self.limits(),
            load=self.options(LoadOptions),
            streaming=self.options(StreamingOptions),
        )

    def job_options(self) -> JobOptions:
        return self.options(JobOptions)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; flags given on the command line (not None) override everything."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"Config file {config_file} does not exist.")
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _config_file.reset(token)
