"""Models load once per process and are shared: the registry hands out ref-counted handles.

The entry point creates one registry and passes it down; there are no module-level models.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from asrserve.engine.batching import BatchStats, DynamicBatcher
from asrserve.engine.engines.base import Engine
from asrserve.engine.models import POCKETSPHINX, VOSK, WHISPER, ResolvedModel, resolve
from asrserve.engine.options import AudioLimits, BatchingOptions, LanguageOptions
from asrserve.engine.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    device: str = "auto"
    """`auto` (CUDA when CTranslate2 sees a GPU), `cpu` or `cuda`."""
    compute_type: str = "default"
    """CTranslate2 compute type; `default` is int8 on CPU and float16 on CUDA."""
    cpu_threads: int = 0
    """Threads per decode worker on CPU; 0 shares every core among the workers."""
    decode_workers: int = 2
    """Batches one model decodes at once (CTranslate2 workers; on one GPU they share the
    weights). On 2 AVX2 cores, two workers of 1 thread against one of 2 (two interleaved
    rounds, 2026-12-04): 16 half-silent live streams, final p95 3.11 and 3.60 s against 5.20
    and 4.82 s; files cost the same (5 long ones 10.4 and 16.6 s against 15.9 and 15.0 s, 32
    short ones 8.3 and 7.6 s against 8.2 and 8.7 s). Before the BLAS fix two workers cost files
    10-48 %, which kept one the default until then."""
    cpu_nice: int = 0
    """Niceness of the model's decode threads (Whisper, Linux): above 0 they take the cores
    only when other models leave them. The live partial model at 10 beside whisper-base finals
    (streaming benchmark, N = 4, two interleaved runs, 2026-12-03): final p95 3.08 and 3.59 s
    against 3.18 and 3.38 s at 0, first partial p50 1.45 and 1.81 s against 1.69 and 1.51 s,
    the same WER: within the runs' spread, so 0 stays the default."""


@dataclass(slots=True)
class LoadedModel:
    resolved: ResolvedModel
    engine: Engine
    batcher: DynamicBatcher
    pipeline: Pipeline
    load_seconds: float
    refs: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.resolved.name


def load_engine(resolved: ResolvedModel, settings: EngineSettings) -> Engine:
    # Imported here so that a process serving one engine never loads the others' libraries.
    if resolved.engine == WHISPER:
        from asrserve.engine.engines.whisper import WhisperEngine

        return WhisperEngine(
            resolved.path,
            name=resolved.name,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
            workers=settings.decode_workers,
            nice=settings.cpu_nice,
        )
    if resolved.engine == POCKETSPHINX:
        from asrserve.engine.engines.pocketsphinx import PocketSphinxEngine

        return PocketSphinxEngine(resolved.path, name=resolved.name)
    if resolved.engine == VOSK:
        from asrserve.engine.engines.vosk import VoskEngine

        language = resolved.languages[0] if resolved.languages else "und"
        return VoskEngine(resolved.path, name=resolved.name, language=language)
    raise ValueError(f"unknown engine {resolved.engine!r}")


class ModelRegistry:
    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        engine_settings: EngineSettings | None = None,
        batching: BatchingOptions | None = None,
        limits: AudioLimits | None = None,
        languages: LanguageOptions | None = None,
        on_batch: Callable[[str, BatchStats], None] | None = None,
        on_load: Callable[[str, float], None] | None = None,
        idle_ttl_s: float | None = None,
        pinned: Collection[str] = (),
        engine_settings_of: Mapping[str, EngineSettings] | None = None,
    ) -> None:
        """`idle_ttl_s`: models nobody holds are unloaded this long after their last use, by a
        background thread, except the `pinned` ones (None: models stay until `close`).
        `engine_settings_of`: models (by catalogue name) loaded with their own engine layout
        instead of `engine_settings`, as the live path's partial model may be."""
        self.cache_dir = cache_dir
        self.engine_settings = engine_settings or EngineSettings()
        self.engine_settings_of = dict(engine_settings_of or {})
        self.batching = batching or BatchingOptions()
        self.limits = limits or AudioLimits()
        self.languages = languages or LanguageOptions()
        self._on_batch = on_batch
        self._on_load = on_load
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.idle_ttl_s = idle_ttl_s
        self.pinned = frozenset(pinned)
        self._closing = threading.Event()
        if idle_ttl_s is not None:
            if idle_ttl_s <= 0:
                raise ValueError("The idle time before a model is unloaded must be positive.")
            threading.Thread(
                target=self._unload_idle_until_closed, args=(idle_ttl_s,), name="model-ttl",
                daemon=True,
            ).start()  # fmt: skip

    def acquire(self, name: str) -> LoadedModel:
        """Load the model on first use (one loader per name) and take a reference to it."""
        with self._lock:
            model = self._models.get(name)
            if model is not None:
                model.refs += 1
                model.last_used = time.monotonic()
                return model
            name_lock = self._loading.setdefault(name, threading.Lock())
        with name_lock:
            with self._lock:
                model = self._models.get(name)
                if model is not None:  # loaded by the thread this one waited for
                    model.refs += 1
                    model.last_used = time.monotonic()
                    return model
            model = self._load(name)
            # Published with its reference taken, so the idle unloader never sees it free.
            with self._lock:
                self._models[name] = model
                model.refs += 1
                model.last_used = time.monotonic()
            return model

    def release(self, model: LoadedModel) -> None:
        with self._lock:
            model.refs = max(0, model.refs - 1)
            model.last_used = time.monotonic()

    @contextmanager
    def use(self, name: str) -> Iterator[LoadedModel]:
        model = self.acquire(name)
        try:
            yield model
        finally:
            self.release(model)

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def unload_idle(self, ttl_s: float) -> list[str]:
        """Unload models nobody holds that were last used more than `ttl_s` ago, pinned ones
        aside. The next request for one loads it again."""
        now = time.monotonic()
        with self._lock:
            idle = [
                m for m in self._models.values()
                if m.refs == 0 and now - m.last_used > ttl_s and m.name not in self.pinned
            ]  # fmt: skip
            for m in idle:
                del self._models[m.name]
        for m in idle:
            m.batcher.close()
            log.info("unloaded idle model", extra={"model": m.name})
        return [m.name for m in idle]

    def _unload_idle_until_closed(self, ttl_s: float) -> None:
        # A model is unloaded between ttl_s and 1.25 ttl_s after its last use.
        while not self._closing.wait(min(30.0, ttl_s / 4)):
            try:
                self.unload_idle(ttl_s)
            except Exception:  # never let the unloader die: models would then stay forever
                log.exception("unloading idle models failed")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            models = list(self._models.values())
            self._models.clear()
        for m in models:
            m.batcher.close()

    def _load(self, name: str) -> LoadedModel:
        started = time.monotonic()
        resolved = resolve(name, self.cache_dir)
        settings = self.engine_settings_of.get(resolved.name, self.engine_settings)
        engine = load_engine(resolved, settings)
        on_batch = self._on_batch
        batcher = DynamicBatcher(
            engine,
            self.batching,
            on_batch=(lambda stats: on_batch(resolved.name, stats)) if on_batch else None,
        )
        pipeline = Pipeline(engine, batcher, limits=self.limits, languages=self.languages)
        seconds = time.monotonic() - started
        info = engine.info
        log.info(
            "loaded model",
            extra={
                "model": resolved.name,
                "seconds": round(seconds, 3),
                "device": info.device,
                "compute_type": info.compute_type,
            },
        )
        if self._on_load is not None:
            self._on_load(resolved.name, seconds)
        return LoadedModel(resolved, engine, batcher, pipeline, seconds)
