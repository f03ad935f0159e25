"""The model catalogue: assembly from registry packages, checksums, local dirs, hub ids, sharing."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from asrserve.engine import (
    CATALOGUE,
    DecodeOptions,
    EngineSettings,
    ModelChecksumError,
    ModelNotFoundError,
    ModelRegistry,
    decode,
)
from asrserve.engine.models import WHISPER, assemble, is_assembled, resolve
from asrserve.evaluation.devset import Clip


def test_catalogue_names_the_four_embedded_models() -> None:
    assert set(CATALOGUE) == {"whisper-base", "whisper-tiny.en", "pocketsphinx-en", "vosk-ko"}
    for entry in CATALOGUE.values():
        assert set(entry.files) == set(entry.sha256), entry.name


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_catalogue_model_assembles_and_verifies(name: str, tmp_path: Path) -> None:
    resolved = resolve(name, tmp_path)
    assert resolved.catalogued
    assert is_assembled(CATALOGUE[name], tmp_path)
    for rel in CATALOGUE[name].sha256:
        assert (resolved.path / rel).is_file()


def test_whisper_base_is_concatenated_from_two_packages(tmp_path: Path) -> None:
    resolved = resolve("whisper-base", tmp_path)
    model_bin = resolved.path / "model.bin"
    assert not model_bin.is_symlink()
    assert model_bin.stat().st_size == 145_217_532


def test_a_corrupted_model_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    resolve("whisper-base", tmp_path)
    model_bin = tmp_path / "whisper-base" / "model.bin"
    with model_bin.open("r+b") as fh:
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelChecksumError, match="models prepare"):
        resolve("whisper-base", tmp_path)


def test_a_deleted_file_is_reassembled(tmp_path: Path) -> None:
    resolve("whisper-tiny.en", tmp_path)
    (tmp_path / "whisper-tiny.en" / "model.bin").unlink()
    assert resolve("whisper-tiny.en", tmp_path).path.joinpath("model.bin").is_file()


def test_unknown_model_names_the_alternatives() -> None:
    with pytest.raises(ModelNotFoundError, match="whisper-base"):
        resolve("no-such-model")


def test_a_local_ctranslate2_directory_is_accepted(tmp_path: Path) -> None:
    source = resolve("whisper-tiny.en", tmp_path / "cache").path
    local = tmp_path / "my-model"
    shutil.copytree(source, local)
    resolved = resolve(str(local))
    assert resolved.engine == WHISPER
    assert not resolved.catalogued
    registry = ModelRegistry(cache_dir=tmp_path / "cache")
    with registry.use(str(local)) as loaded:
        assert loaded.engine.info.languages == frozenset({"en"})
    registry.close()


def test_a_directory_that_is_no_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a model directory"):
        resolve(str(tmp_path))


def test_a_hub_id_offline_fails_fast_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="huggingface-cli download"):
        resolve("Systran/faster-whisper-base")
    assert time.monotonic() - started < 30  # a bound against hanging, not a speed claim


def test_a_hub_id_found_in_the_local_cache_loads(tmp_path: Path) -> None:
    local = resolve("whisper-tiny.en", tmp_path).path

    def cached(model_id: str, allow_download: bool) -> str:
        assert model_id == "Systran/faster-whisper-tiny.en"
        return str(local)

    resolved = resolve("Systran/faster-whisper-tiny.en", hub_download=cached)
    assert resolved.path == local
    assert resolved.engine == WHISPER


def test_the_registry_loads_each_model_once_for_concurrent_callers(tmp_path: Path) -> None:
    loads: list[str] = []
    registry = ModelRegistry(cache_dir=tmp_path, on_load=lambda name, s: loads.append(name))
    got = []

    def grab() -> None:
        got.append(registry.acquire("whisper-tiny.en"))

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["whisper-tiny.en"]
    assert len({id(m) for m in got}) == 1
    assert got[0].refs == 4
    for m in got:
        registry.release(m)
    assert registry.unload_idle(ttl_s=0) == ["whisper-tiny.en"]
    assert registry.loaded() == []
    registry.close()


def test_idle_models_are_unloaded_after_their_time_to_live_and_pinned_ones_stay(
    tmp_path: Path,
) -> None:
    loads: list[str] = []
    registry = ModelRegistry(
        cache_dir=tmp_path, on_load=lambda name, s: loads.append(name),
        idle_ttl_s=0.2, pinned={"whisper-tiny.en"},
    )  # fmt: skip
    try:
        registry.release(registry.acquire("whisper-tiny.en"))
        held = registry.acquire("pocketsphinx-en")
        time.sleep(0.5)  # past the time to live, but held: it stays
        assert {m.name for m in registry.loaded()} == {"whisper-tiny.en", "pocketsphinx-en"}
        registry.release(held)
        deadline = time.monotonic() + 30
        while "pocketsphinx-en" in {m.name for m in registry.loaded()}:
            assert time.monotonic() < deadline, "an idle model was never unloaded"
            time.sleep(0.05)
        assert [m.name for m in registry.loaded()] == ["whisper-tiny.en"]
        # Asked for again, it loads again and works.
        with registry.use("pocketsphinx-en") as again:
            assert again.engine.detect_language([np.zeros(16000, np.float32)]).language == "en"
        assert loads == ["whisper-tiny.en", "pocketsphinx-en", "pocketsphinx-en"]
    finally:
        registry.close()


def test_assembly_is_idempotent(tmp_path: Path) -> None:
    entry = CATALOGUE["pocketsphinx-en"]
    first = assemble(entry, tmp_path)
    mtime = (first / "en-us.lm.bin").lstat().st_mtime_ns
    assert assemble(entry, tmp_path) == first
    assert (first / "en-us.lm.bin").lstat().st_mtime_ns == mtime


def test_two_decode_workers_share_the_cores_and_decode_side_by_side(
    tmp_path: Path, jfk: Clip
) -> None:
    from asrserve.engine import DecodeOptions, decode
    from asrserve.engine.engines.whisper import WhisperEngine, usable_cpus

    registry = ModelRegistry(cache_dir=tmp_path, engine_settings=EngineSettings(decode_workers=2))
    with registry.use("whisper-tiny.en") as tiny:
        engine = tiny.engine
        assert engine.info.workers == 2
        assert cast(WhisperEngine, engine).cpu_threads == max(1, usable_cpus() // 2)
        assert tiny.batcher.engine is engine and len(tiny.batcher._threads) == 2
        audio = decode(jfk.audio)[: 16000 * 8]
        fitted = DecodeOptions(language="en", fitted_window_pad_s=3.0, fitted_window_min_s=15.0)
        alone = [s.text for s in engine.transcribe_chunks([audio], fitted)[0]]
        with ThreadPoolExecutor(2) as pool:
            both = list(pool.map(lambda _: engine.transcribe_chunks([audio], fitted)[0], "ab"))
        assert alone and all([s.text for s in segments] == alone for segments in both)
    registry.close()


def test_a_model_can_have_its_own_engine_layout(tmp_path: Path) -> None:
    # The live path's partial model is loaded with its own workers and threads; the others
    # keep the registry's layout.
    from asrserve.engine.engines.whisper import WhisperEngine

    registry = ModelRegistry(
        cache_dir=tmp_path,
        engine_settings=EngineSettings(decode_workers=1, cpu_threads=2),
        engine_settings_of={"whisper-tiny.en": EngineSettings(decode_workers=2, cpu_threads=1)},
    )
    with registry.use("whisper-tiny.en") as tiny, registry.use("whisper-base") as base:
        assert (tiny.engine.info.workers, cast(WhisperEngine, tiny.engine).cpu_threads) == (2, 1)
        assert (base.engine.info.workers, cast(WhisperEngine, base.engine).cpu_threads) == (1, 2)
        assert len(tiny.batcher._threads) == 2
    registry.close()


def _thread_cpu_and_nice() -> dict[int, tuple[int, int]]:
    """Per thread of this process: (CPU clock ticks so far, niceness), from /proc."""
    threads = {}
    for tid in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            stat = (tid / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            threads[int(tid.name)] = (int(fields[11]) + int(fields[12]), int(fields[16]))
    return threads


def _decoding_threads(decode_now: Callable[[], object]) -> dict[int, int]:
    """Threads that used CPU while `decode_now()` ran (at least 5 ticks), and their niceness."""
    before = _thread_cpu_and_nice()
    decode_now()
    after = _thread_cpu_and_nice()
    return {
        tid: nice for tid, (ticks, nice) in after.items() if ticks - before.get(tid, (0, 0))[0] >= 5
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_a_niced_model_decodes_in_niced_threads_and_the_others_do_not(
    tmp_path: Path, jfk: Clip
) -> None:
    # The partial model's decode threads yield the cores to the final model's.
    registry = ModelRegistry(
        cache_dir=tmp_path,
        engine_settings=EngineSettings(decode_workers=1, cpu_threads=2),
        engine_settings_of={"whisper-tiny.en": EngineSettings(cpu_threads=2, cpu_nice=10)},
    )
    audio = decode(jfk.audio)
    options = DecodeOptions(language="en")
    with registry.use("whisper-tiny.en") as tiny, registry.use("whisper-base") as base:
        niced = _decoding_threads(lambda: tiny.engine.transcribe_chunks([audio], options))
        plain = _decoding_threads(lambda: base.engine.transcribe_chunks([audio], options))
    registry.close()
    # CTranslate2's worker and its intra-op thread do the work; this thread extracts features.
    assert list(niced.values()).count(10) >= 2, niced
    assert 10 not in plain.values(), plain
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0, "the loading thread kept its niceness"


def test_loading_a_whisper_model_leaves_numpys_blas_one_thread(tmp_path: Path, jfk: Clip) -> None:
    # In a fresh interpreter: the BLAS pool starts with a thread per core, and its spinning
    # helpers would take cores from CTranslate2 between feature extractions.
    from asrserve.engine.engines.whisper import usable_cpus

    if usable_cpus() < 2:
        pytest.skip("one CPU: the BLAS pool has no helper threads to begin with")
    script = """
import json, sys
from pathlib import Path
from threadpoolctl import threadpool_info
from asrserve.engine import DecodeOptions, ModelRegistry, decode

def blas():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

before = blas()
with ModelRegistry(cache_dir=Path(sys.argv[1])) as registry, registry.use("whisper-tiny.en") as m:
    (segments,) = m.engine.transcribe_chunks([decode(sys.argv[2])], DecodeOptions(language="en"))
print(json.dumps({"before": before, "after": blas(), "text": " ".join(s.text for s in segments)}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(jfk.audio)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] and max(seen["before"]) > 1, seen
    assert seen["after"] == [1] * len(seen["before"]), seen
    assert "ask not what your country" in seen["text"].lower()
