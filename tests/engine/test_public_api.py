"""The engine's public surface: what `asrserve.engine` exports, used as its docstring shows."""

from __future__ import annotations

import srt

import asrserve.engine
from asrserve.engine import ModelRegistry, ResponseFormat, render
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.wer import word_errors


def test_every_export_is_there_and_comes_from_the_engine() -> None:
    for name in asrserve.engine.__all__:
        value = getattr(asrserve.engine, name)
        module = getattr(value, "__module__", "asrserve.engine")
        assert module.startswith("asrserve.engine"), (name, module)


def test_the_docstring_example_transcribes_to_srt(jfk: Clip) -> None:
    with ModelRegistry() as models, models.use("whisper-base") as model:
        subtitles = render(model.pipeline.transcribe(jfk.audio), ResponseFormat.SRT)
    cues = list(srt.parse(subtitles))
    assert word_errors([jfk.text], [" ".join(c.content for c in cues)]).rate < 0.1
    assert 0 <= cues[0].start.total_seconds() < cues[-1].end.total_seconds() <= jfk.duration
    assert models.loaded() == []
