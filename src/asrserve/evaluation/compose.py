"""Long test recordings composed from the development set's short clips.

Real recordings that users send often hold short prompts with short pauses between them, and
the same words said again (menus, read-back, "thank you, thank you"). The development set has
short clips but no such recording, so these functions lay clips end to end on one timeline,
with a reference transcript that repeats what the audio repeats. Everything is seeded: the
same arguments give the same samples.
"""

from __future__ import annotations

import random
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asrserve.engine import SAMPLE_RATE, decode
from asrserve.evaluation.devset import Clip, clean_read, dev_set_dir, load_subset

COMPOSED = "composed"
"""The pseudo-subset `composed_set` writes: long recordings of repeated short prompts."""


@dataclass(frozen=True, slots=True)
class Placed:
    """One clip on the composed timeline."""

    clip: Clip
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Composition:
    audio: np.ndarray
    placed: tuple[Placed, ...]

    @property
    def text(self) -> str:
        return " ".join(p.clip.text for p in self.placed)

    @property
    def duration(self) -> float:
        return self.audio.size / SAMPLE_RATE


def lay_out(
    clips: Sequence[Clip],
    pauses_s: Sequence[float],
    *,
    inserts: dict[int, np.ndarray] | None = None,
) -> Composition:
    """Clips one after another with `pauses_s[i]` of silence after clip i. `inserts[i]` is
    audio (music, noise) placed inside the pause after clip i, surrounded by that pause."""
    pieces: list[np.ndarray] = []
    placed: list[Placed] = []
    cursor = 0
    for i, clip in enumerate(clips):
        samples = decode(clip.audio)
        placed.append(Placed(clip, cursor / SAMPLE_RATE, (cursor + samples.size) / SAMPLE_RATE))
        pieces.append(samples)
        cursor += samples.size
        gap = np.zeros(round(pauses_s[i] * SAMPLE_RATE), np.float32)
        extra = (inserts or {}).get(i)
        for piece in (gap, extra, gap) if extra is not None else (gap,):
            pieces.append(piece.astype(np.float32, copy=False))
            cursor += piece.size
    return Composition(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), tuple(placed))


def repeated_prompts(
    clips: Sequence[Clip],
    *,
    minutes: float,
    seed: int = 0,
    max_clip_s: float = 8.0,
    repeat_share: float = 0.4,
    pause_range_s: tuple[float, float] = (0.3, 1.2),
) -> Composition:
    """Short prompts joined by short pauses, at most `minutes` long (the first group of
    prompts that would run past it ends the recording), where about `repeat_share` of the
    prompts are said two or three times in a row (the very same recording each time)."""
    rng = random.Random(seed)
    pool = [c for c in clips if c.duration <= max_clip_s]
    if not pool:
        raise ValueError(f"no clip of at most {max_clip_s} s to compose from")
    order: list[Clip] = []
    pauses: list[float] = []
    seconds = 0.0
    while True:
        clip = rng.choice(pool)
        times = rng.choice((2, 3)) if rng.random() < repeat_share else 1
        gaps = [round(rng.uniform(*pause_range_s), 2) for _ in range(times)]
        group = times * clip.duration + sum(gaps)
        if seconds + group > minutes * 60:
            break
        order.extend([clip] * times)
        pauses.extend(gaps)
        seconds += group
    return lay_out(order, pauses)


def composed_set(root: Path | None = None) -> list[Clip]:
    """The benchmark's long recordings, written once as WAV files under the development set's
    cache (`<root>/audio/composed/`): one of 10 minutes like a recording of many short, partly
    repeated prompts, and four of about 30 s, one prompt said two or three times after another
    with 1 s pauses. Built from the clean English clips only."""
    root = root or dev_set_dir()
    clean = clean_read(load_subset("en", root))
    short = [c for c in clean if 2.0 <= c.duration <= 5.0]
    recordings = {"repeated-prompts-10min": repeated_prompts(clean, minutes=10, seed=0)}
    for seed in range(4):
        recordings[f"repeated-prompts-30s-{seed}"] = repeated_prompts(
            short, minutes=0.5, seed=seed, repeat_share=1.0, pause_range_s=(0.9, 1.1)
        )
    out = root / "audio" / COMPOSED
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    for name, recording in recordings.items():
        path = out / f"{name}.wav"
        pcm = (np.clip(recording.audio, -1.0, 1.0) * 32767).astype("<i2")
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(pcm.tobytes())
        clips.append(
            Clip(name, path, recording.text, "en", recording.duration, ("composed",), "various")
        )
    return clips
