"""Audio in and out: any extracted file to 16 kHz mono int16 samples, samples to WAV."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np

from devset.common import SAMPLE_RATE


def decode(path: Path, *, raw: bool = False) -> np.ndarray:
    """16 kHz mono int16 samples of `path` (headerless 16 kHz int16 when `raw`)."""
    if raw:
        return np.fromfile(path, dtype="<i2").astype(np.int16)
    # A WAV already in the target format is read as it is: no resampler touches its samples.
    pcm = _read_target_wav(path) if path.suffix.lower() == ".wav" else None
    return pcm if pcm is not None else _decode_av(path)


def _read_target_wav(path: Path) -> np.ndarray | None:
    try:
        with wave.open(str(path)) as w:
            if w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2:
                return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    except (wave.Error, EOFError):  # not a PCM WAV that `wave` reads: PyAV decodes it
        pass
    return None


def _decode_av(path: Path) -> np.ndarray:
    """Decode the first audio stream with PyAV and resample it with PyAV's own resampler."""
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(stream):
            # The samples are taken in decode order; without timestamps the resampler does not
            # follow the container's (sometimes gapped or reset) ones.
            frame.pts = None
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]  # the tail
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


def write_wav(path: Path, pcm: np.ndarray) -> None:
    """16 kHz mono 16-bit WAV, written under a temporary name and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    tmp.replace(path)


def wav_frames(path: Path) -> int:
    with wave.open(str(path)) as w:
        return w.getnframes()
