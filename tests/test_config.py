"""Settings come from defaults < TOML file < ASRSERVE_* environment < command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from asrserve.api.options import ServerOptions
from asrserve.config import CONFIG_ENV, Settings, load_settings
from asrserve.engine import AudioLimits, BatchingOptions, EngineSettings, LanguageOptions
from asrserve.jobs.options import JobOptions
from asrserve.ws.options import StreamServerOptions


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("ASRSERVE_MODEL", "ASRSERVE_BATCH_SECONDS", "ASRSERVE_DEVICE", CONFIG_ENV):
        monkeypatch.delenv(key, raising=False)


def test_defaults_run_the_embedded_model_on_no_external_service() -> None:
    settings = load_settings()
    assert settings.model == "whisper-base"
    assert settings.device == "auto"
    assert settings.batching().max_batch_seconds == 240.0


def test_unset_settings_are_the_option_types_own_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # One home per default: a setting nobody set gives exactly what the option type would.
    for key in [k for k in os.environ if k.startswith("ASRSERVE_")]:
        monkeypatch.delenv(key)
    settings = load_settings()
    assert settings.engine_settings() == EngineSettings()
    assert settings.batching() == BatchingOptions()
    assert settings.language_options() == LanguageOptions()
    assert settings.limits() == AudioLimits()
    assert settings.server_options() == ServerOptions()
    assert settings.stream_options() == StreamServerOptions()
    assert settings.job_options() == JobOptions()


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "asrserve.toml"
    config.write_text(
        'model = "whisper-tiny.en"\nbatch_seconds = 60\ndevice = "cpu"\nmax_upload_mb = 2\n'
    )
    settings = load_settings(config)
    assert (settings.model, settings.batch_seconds, settings.device) == (
        "whisper-tiny.en",
        60,
        "cpu",
    )
    assert settings.limits().max_bytes == 2 * 1024 * 1024
    monkeypatch.setenv("ASRSERVE_BATCH_SECONDS", "90")
    assert load_settings(config).batch_seconds == 90
    assert (
        load_settings(config, model="pocketsphinx-en", batch_seconds=None).model
        == "pocketsphinx-en"
    )
    monkeypatch.setenv(CONFIG_ENV, str(config))
    assert load_settings().model == "whisper-tiny.en"


def test_a_config_file_does_not_leak_into_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "asrserve.toml"
    config.write_text('model = "whisper-tiny.en"\n')
    assert load_settings(config).model == "whisper-tiny.en"
    assert CONFIG_ENV not in os.environ
    assert load_settings().model == "whisper-base"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASRSERVE_DEVICE", "tpu")
    with pytest.raises(ValidationError):
        load_settings()
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.toml")


def test_each_setting_reaches_the_option_field_it_is_marked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "ASRSERVE_MAX_STREAMS": "3",
        "ASRSERVE_JOB_RETENTION_HOURS": "2",
        "ASRSERVE_MAX_UPLOAD_MB": "1.5",
        "ASRSERVE_API_KEYS": "k1, k2",
        "ASRSERVE_WEBHOOK_SECRET": "s3cret",
        "ASRSERVE_LANGUAGES": "en,es",
        "ASRSERVE_STREAM_OVERLOADED_LAG_S": "4",
        "ASRSERVE_BATCH_PACK_GAP_S": "off",
        "ASRSERVE_MODEL": "whisper-tiny.en",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    streams, server, jobs = (
        settings.stream_options(),
        settings.server_options(),
        settings.job_options(),
    )
    assert (streams.max_streams, streams.load.overloaded_lag_s) == (3, 4.0)
    assert streams.final_model == server.default_model == "whisper-tiny.en"
    assert (jobs.retention_s, jobs.webhook_secret) == (7200.0, "s3cret")
    assert server.limits.max_bytes == streams.limits.max_bytes == int(1.5 * 1024 * 1024)
    assert server.api_keys == ("k1", "k2")
    assert server.languages.expected == ("en", "es")
    assert server.batching.pack_gap_s is None
    # No option field is filled by two settings (building one checks none is left unfilled).
    marks = [(mark.owner, mark.name) for _, mark in Settings.marks()]
    assert len(set(marks)) == len(marks)


def test_an_option_field_no_setting_fills_is_an_error_not_a_silent_default() -> None:
    @dataclass(frozen=True)
    class NewOptions:
        new_knob: int = 1

    with pytest.raises(TypeError, match="new_knob"):
        load_settings().options(NewOptions)


def test_the_partial_model_has_the_models_layout_unless_given_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASRSERVE_DECODE_WORKERS", "3")
    monkeypatch.setenv("ASRSERVE_CPU_THREADS", "2")
    assert load_settings().partial_engine_settings() == load_settings().engine_settings()
    monkeypatch.setenv("ASRSERVE_PARTIAL_DECODE_WORKERS", "2")
    monkeypatch.setenv("ASRSERVE_PARTIAL_CPU_THREADS", "1")
    partial = load_settings().partial_engine_settings()
    assert (partial.decode_workers, partial.cpu_threads) == (2, 1)
    assert load_settings().engine_settings().decode_workers == 3
    monkeypatch.setenv("ASRSERVE_PARTIAL_CPU_NICE", "10")
    assert load_settings().partial_engine_settings().cpu_nice == 10
    assert load_settings().engine_settings().cpu_nice == 0, "the final model is never niced"


def test_language_partial_models_are_language_model_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASRSERVE_LANGUAGE_PARTIAL_MODELS", "ko=vosk-ko, es=whisper-base")
    options = load_settings().stream_options()
    assert options.language_partial_models == {"ko": "vosk-ko", "es": "whisper-base"}
    # The final model serves its own partials without a second copy or its own layout.
    assert options.partial_models == {"whisper-tiny.en", "vosk-ko"}
    monkeypatch.setenv("ASRSERVE_LANGUAGE_PARTIAL_MODELS", "ko")
    with pytest.raises(ValidationError, match="language=model"):
        load_settings()
