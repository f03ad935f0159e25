"""Conversion of every clip to its WAV, in parallel, reusing clips already converted."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from devset.audio import decode, wav_frames, write_wav
from devset.common import SAMPLE_RATE, Utt

MIN_SAMPLES = SAMPLE_RATE // 10  # shorter than 0.1 s: the decode or the cut went wrong


class SharedPcm:
    """Decoded files that several clips are cut from: each is decoded once, across threads."""

    def __init__(self) -> None:
        self._pcm: dict[tuple[Path, bool], np.ndarray] = {}
        self._locks: dict[tuple[Path, bool], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, path: Path, raw: bool) -> np.ndarray:
        key = (path, raw)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one lock per file: other files' clips go on being converted meanwhile
            if key not in self._pcm:
                self._pcm[key] = decode(path, raw=raw)
            return self._pcm[key]


def convert(u: Utt, out: Path, shared: SharedPcm) -> int:
    """Write u's clip to `out` unless already there for the same recipe; return its frames."""
    stamp = out.with_name(f".{out.name}.src")  # hidden: what the clip was made from
    if out.exists() and stamp.exists() and stamp.read_text() == u.spec_key():
        return wav_frames(out)
    pcm = _clip_samples(u, shared)
    if len(pcm) < MIN_SAMPLES:
        raise RuntimeError(f"{u.id}: decoded audio is empty or too short ({len(pcm)} samples)")
    write_wav(out, pcm)
    stamp.write_text(u.spec_key())  # after the WAV: a stamp always describes a whole clip
    return len(pcm)


def _clip_samples(u: Utt, shared: SharedPcm) -> np.ndarray:
    if u.start is None:
        return decode(u.src, raw=u.raw)
    pcm = shared.get(u.src, u.raw)
    a = round(u.start * SAMPLE_RATE)
    b = len(pcm) if u.end is None else round(u.end * SAMPLE_RATE)
    return pcm[a:b]


def convert_all(utts: list[Utt], cache: Path, jobs: int) -> tuple[dict[str, int], dict[str, str]]:
    """Convert every clip; return the frames of each converted one and the error of each other.

    A clip that cannot be decoded is left out of the set with its error rather than costing
    the whole run.
    """
    shared = SharedPcm()
    frames: dict[str, int] = {}
    failed: dict[str, str] = {}

    def job(u: Utt) -> None:
        try:
            frames[u.id] = convert(u, cache / u.audio, shared)
        except Exception as e:
            failed[u.id] = f"{type(e).__name__}: {e}".splitlines()[0][:200]

    # Clips cut out of a shared file first, then by file name: the slow long-file decodes start
    # early instead of leaving one thread busy at the end.
    ordered = sorted(utts, key=lambda u: (u.start is None, u.src.name))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        list(ex.map(job, ordered))
    return frames, failed
