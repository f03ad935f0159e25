"""Real encoded audio files for tests, written with PyAV's (FFmpeg's) own encoders.

`encode` turns a waveform into a wav, flac, mp3, m4a, ogg, opus, webm or mp4 file, so tests can
check that the same speech in every container decodes (and transcribes) the same.
`similarity` compares a decoded waveform with its source, allowing for the delay and padding
lossy codecs add. `read_wav` loads a PCM wav with the standard library only, so reference
audio never depends on the decoder under test.

Encoders in this PyAV build (av 18.1.0, FFmpeg 8.1): pcm_s16le, flac, libmp3lame, FFmpeg's
native aac, FFmpeg's native vorbis (libvorbis is not built in) and libopus.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

__all__ = ["CONTAINERS", "ContainerSpec", "encode", "read_wav", "similarity"]


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """How one upload format is produced: muxer, encoder and the constraints they impose."""

    suffix: str
    """File name extension users send it with."""
    muxer: str
    """FFmpeg muxer name."""
    codec: str
    """FFmpeg encoder name."""
    sample_format: str
    """Sample format the encoder takes."""
    lossless: bool
    rates: tuple[int, ...] | None = None
    """Sample rates the encoder accepts (None: any); others are encoded at the nearest higher
    one (or the highest)."""
    channels: int | None = None
    """Channel count the encoder requires (None: any); mono input is duplicated to it."""
    options: tuple[tuple[str, str], ...] = ()
    """Encoder options."""


_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)

CONTAINERS: dict[str, ContainerSpec] = {
    "wav": ContainerSpec("wav", "wav", "pcm_s16le", "s16", lossless=True),
    "flac": ContainerSpec("flac", "flac", "flac", "s16", lossless=True),
    "mp3": ContainerSpec(
        "mp3",
        "mp3",
        "libmp3lame",
        "fltp",
        lossless=False,
        rates=(8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    ),
    "m4a": ContainerSpec("m4a", "ipod", "aac", "fltp", lossless=False),
    # FFmpeg's own vorbis encoder is experimental and only encodes stereo.
    "ogg": ContainerSpec(
        "ogg",
        "ogg",
        "vorbis",
        "fltp",
        lossless=False,
        channels=2,
        options=(("strict", "experimental"),),
    ),
    "opus": ContainerSpec("opus", "ogg", "libopus", "flt", lossless=False, rates=_OPUS_RATES),
    "webm": ContainerSpec("webm", "webm", "libopus", "flt", lossless=False, rates=_OPUS_RATES),
    "mp4": ContainerSpec("mp4", "mp4", "aac", "fltp", lossless=False),
}


def encode(
    audio: np.ndarray,
    sample_rate: int,
    container: str,
    path: Path,
    *,
    rate: int | None = None,
    channels: int = 1,
) -> Path:
    """Write `audio` (float in [-1, 1]; 1-D mono or (channels, samples)) to `path` as `container`.

    `rate` is the encoded sample rate (default: `sample_rate`, or the nearest one the codec
    supports); FFmpeg resamples on the way in. `channels` is the encoded channel count: mono
    input is copied to every channel, multi-channel input is mixed by FFmpeg. A codec with a
    fixed channel count (vorbis: stereo) overrides it. Returns `path`.
    """
    spec = CONTAINERS[container]
    out_rate = _supported_rate(rate or sample_rate, spec.rates)
    out_channels = spec.channels or channels
    planes = _planes(audio, out_channels)
    with av.open(str(path), mode="w", format=spec.muxer) as out:
        stream = out.add_stream(spec.codec, rate=out_rate, layout=_layout(out_channels))
        assert isinstance(stream, av.AudioStream)  # every codec in CONTAINERS is an audio one
        stream.format = spec.sample_format
        if spec.options:
            stream.codec_context.options = dict(spec.options)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planes, dtype=np.float32),
            format="fltp",
            layout=_layout(planes.shape[0]),
        )
        frame.sample_rate = sample_rate
        # The codec context converts rate, layout and format and cuts the encoder's frame
        # size itself.
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM wav as float32 (mono, or mono-mixed by averaging) and its sample rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path} is not 16-bit PCM")
        rate, channels = wav.getframerate(), wav.getnchannels()
        raw = wav.readframes(wav.getnframes())
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1, dtype=np.float32), rate


def similarity(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Normalised cross-correlation of two waveforms at their best alignment, and that lag.

    The lag (decoded relative to reference, in samples, within ±`max_lag`) absorbs encoder
    delay; the correlation is computed on the overlap only, so padding at either end is not
    penalised. 1.0 means identical up to a gain.
    """
    lag = _best_lag(reference, decoded, max_lag)
    if lag >= 0:
        a, b = reference, decoded[lag:]
    else:
        a, b = reference[-lag:], decoded
    n = min(a.size, b.size)
    a = a[:n].astype(np.float64)
    b = b[:n].astype(np.float64)
    denom = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return (float(np.dot(a, b) / denom) if denom else 0.0), lag


def _best_lag(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> int:
    size = 1 << int(np.ceil(np.log2(reference.size + decoded.size)))
    spectrum = np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(reference, size))
    xcorr = np.fft.irfft(spectrum, size)
    # xcorr[k] = sum(decoded[n + k] * reference[n]); negative lags wrap to the end.
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([xcorr[: max_lag + 1], xcorr[size - max_lag :]])
    return int(lags[np.argmax(values)])


def _planes(audio: np.ndarray, channels: int) -> np.ndarray:
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 1:
        return np.tile(samples, (channels, 1))
    if samples.ndim == 2:
        return samples
    raise ValueError(f"audio must be 1-D or (channels, samples), got shape {samples.shape}")


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def _supported_rate(rate: int, rates: tuple[int, ...] | None) -> int:
    if rates is None or rate in rates:
        return rate
    return next((r for r in sorted(rates) if r >= rate), max(rates))
