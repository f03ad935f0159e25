"""Settings come from defaults < TOML file < ASRSERVE_* environment < command-line flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from asrserve.api.options import ServerOptions
from asrserve.config import CONFIG_ENV, load_settings
from asrserve.engine.options import AudioLimits, BatchingOptions, LanguageOptions
from asrserve.engine.registry import EngineSettings
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
