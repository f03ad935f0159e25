"""Audio in, engine input out: 1-D float32 mono samples at 16 kHz in [-1, 1].

`decode` takes anything a user can upload (a path, bytes, or a binary file object holding wav,
flac, mp3, m4a/aac, ogg/vorbis, opus, webm or mp4 audio at any rate and channel count) and
decodes it with PyAV, which bundles FFmpeg. Format conversion, downmixing and resampling are all
FFmpeg's (libswresample through `av.AudioResampler`), so every input goes through one well-tested
path. Size and duration limits are enforced while the input is read and decoded, so an oversized
upload costs neither memory nor decoding time beyond the limit.

The PCM helpers serve the live (WebSocket) path, where clients send raw 16-bit little-endian PCM.

Every failure a user can cause raises a subclass of `AudioError` whose message is one sentence
saying what was wrong and what to do; the original exception is chained as its cause.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Final, TypeAlias

import av
import av.error
import numpy as np

from asrserve.engine.errors import (
    AudioDecodeError,
    AudioError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
)
from asrserve.engine.options import AudioLimits

__all__ = [
    "DEFAULT_LIMITS",
    "SAMPLE_RATE",
    "AudioSource",
    "decode",
    "duration_of",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "probe_duration",
    "resample",
]

SAMPLE_RATE: Final = 16000
"""The rate every engine consumes."""

DEFAULT_LIMITS: Final = AudioLimits()

AudioSource: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO

_ACCEPTED: Final = "send wav, flac, mp3, m4a, ogg, opus or webm"

# Downmix with gains normalised so the channel weights sum to 1 (an average for stereo).
# FFmpeg's default matrix is not normalised for float output: a stereo file with the same
# signal in both channels would come out 3 dB louder and clip once forced into [-1, 1].
_DOWNMIX: Final = {"rematrix_maxval": "1.0"}

# First read from a non-seekable stream: enough to tell an empty upload from a real one.
_PEEK_BYTES: Final = 64 * 1024

_PCM16_SCALE: Final = 32768.0


def decode(
    source: AudioSource,
    *,
    limits: AudioLimits = DEFAULT_LIMITS,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Decode any common audio file to 1-D float32 mono at `sample_rate`, clipped to [-1, 1].

    `source` is a path, the file's bytes, or a binary file object. A seekable file object is
    read from its current position; a non-seekable one (a pipe, a socket) is streamed, which
    works for every format except MP4/M4A files whose index (`moov`) sits at the end.
    The file object is never closed here: it belongs to the caller.

    Limits: `limits.max_bytes` is checked before decoding from the file size (paths, bytes,
    seekable file objects); a non-seekable stream is read at most one byte past the limit.
    `limits.max_duration_s` is checked as audio is decoded, so a long file fails as soon as
    the limit is passed rather than after decoding all of it.

    Damaged input: a file that FFmpeg cannot open, that has no audio stream, or that makes the
    decoder fail part-way raises `AudioDecodeError`. A truncated file that FFmpeg decodes
    without an error up to the cut (wav, flac and mp3 usually do) returns the audio before the
    cut: that is the user's audio, and the transcript of it is still useful.

    Raises:
        EmptyAudioError: the input is 0 bytes, or decodes to no samples.
        AudioTooLargeError: the input is larger than `limits.max_bytes`.
        AudioTooLongError: the audio is longer than `limits.max_duration_s`.
        AudioDecodeError: the path does not exist, the input is not decodable audio, or it is
            corrupt.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}.")
    if isinstance(source, (str, os.PathLike)):
        return _decode_path(Path(source), limits, sample_rate)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode_bytes(source, limits, sample_rate)
    return _decode_file_object(source, limits, sample_rate)


def pcm16_to_float32(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Convert 16-bit signed little-endian PCM to float32 in [-1, 1)."""
    size = memoryview(data).nbytes
    if size % 2:
        raise AudioDecodeError(
            f"The PCM audio has an odd number of bytes ({size}); send 16-bit little-endian "
            "samples, two bytes each, and never split a sample across messages."
        )
    samples = np.frombuffer(data, dtype="<i2")
    return samples.astype(np.float32) / np.float32(_PCM16_SCALE)


def float32_to_pcm16(audio: np.ndarray) -> bytes:
    """Convert float samples in [-1, 1] to 16-bit signed little-endian PCM, clipping overs.

    Uses the same scale as `pcm16_to_float32`, so PCM -> float -> PCM is exact: the PCM engines
    are sensitive enough that one-LSB differences change some transcripts.
    """
    samples = np.asarray(audio, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"expected 1-D mono audio, got an array of shape {samples.shape}")
    scaled = np.rint(np.nan_to_num(samples) * _PCM16_SCALE)
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample 1-D mono audio with FFmpeg's resampler; returns float32.

    The output has `round(len(audio) * to_rate / from_rate)` samples, for chunks of any length.
    Each call is independent (no filter state carries over between calls), so for a live
    stream resample whole utterances or accept small seams at chunk edges.
    """
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"resample expects 1-D mono audio, got shape {samples.shape}.")
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"Sample rates must be positive, got {from_rate} and {to_rate}.")
    if from_rate == to_rate:
        return samples.copy()
    expected = round(samples.size * to_rate / from_rate)
    if expected == 0:
        return np.zeros(0, dtype=np.float32)
    # libswresample returns nothing at all for an input shorter than its filter, even when
    # flushed. Trailing silence makes every chunk long enough; the trim below removes it.
    pad = max(256, math.ceil(from_rate / to_rate) * 64)
    padded = np.concatenate([samples, np.zeros(pad, dtype=np.float32)])
    frame = av.AudioFrame.from_ndarray(padded[np.newaxis, :], format="flt", layout="mono")
    frame.sample_rate = from_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)
    out = _concat(_frame_samples(f) for f in _resample_all(resampler, [frame]))
    return out[:expected]


def duration_of(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Length in seconds of audio whose last axis is time."""
    return float(audio.shape[-1] / sample_rate)


def probe_duration(path: str | os.PathLike[str]) -> float | None:
    """A file's duration from its container's header, without decoding it; None when the
    file does not say (or cannot be opened: `decode` then reports why)."""
    try:
        with av.open(f"file:{Path(path)}", mode="r", metadata_errors="replace") as container:
            stream = container.streams.best("audio")
            if stream is not None and stream.duration is not None and stream.time_base:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
    except (av.error.FFmpegError, OSError):
        return None
    return None


# --- opening the input ---------------------------------------------------------------------


def _decode_path(path: Path, limits: AudioLimits, sample_rate: int) -> np.ndarray:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise AudioDecodeError(
            f"No audio file exists at {path}; check the path and try again."
        ) from exc
    except OSError as exc:
        raise AudioDecodeError(
            f"The audio file {path} cannot be read ({exc.strerror}); check its permissions."
        ) from exc
    if path.is_dir():
        raise AudioDecodeError(f"{path} is a directory; give the path of an audio file.")
    _check_size(size, limits.max_bytes)
    # FFmpeg reads the path itself (no copy through Python). The explicit protocol keeps a
    # name such as `http:x.wav` or `concat:a|b` a plain local file.
    return _decode_input(f"file:{path}", limits.max_duration_s, sample_rate)


def _decode_bytes(
    data: bytes | bytearray | memoryview, limits: AudioLimits, sample_rate: int
) -> np.ndarray:
    _check_size(memoryview(data).nbytes, limits.max_bytes)
    buffer = io.BytesIO(data if isinstance(data, bytes) else bytes(data))
    return _decode_input(buffer, limits.max_duration_s, sample_rate)


def _decode_file_object(fileobj: BinaryIO, limits: AudioLimits, sample_rate: int) -> np.ndarray:
    reader = _BoundedReader.open(fileobj, limits.max_bytes)
    try:
        audio = _decode_input(reader, limits.max_duration_s, sample_rate)
    except AudioError as exc:
        # The decoder only saw what the reader let through: a cut at the size limit or a read
        # error is the real cause of whatever it made of that.
        reader.raise_if_failed(cause=exc)
        raise
    reader.raise_if_failed()
    return audio


def _check_size(size: int, max_bytes: int | None) -> None:
    if size == 0:
        raise EmptyAudioError("The input is empty (0 bytes); send a file that contains audio.")
    if max_bytes is not None and size > max_bytes:
        raise AudioTooLargeError(
            f"The input is {size:,} bytes, over the {max_bytes:,}-byte limit; send a shorter "
            "recording or a compressed format such as mp3, m4a or opus."
        )


def _too_large(max_bytes: int) -> AudioTooLargeError:
    return AudioTooLargeError(
        f"The input is larger than the {max_bytes:,}-byte limit; send a shorter recording "
        "or a compressed format such as mp3, m4a or opus."
    )


class _BoundedReader:
    """The caller's file object as PyAV's custom I/O sees it.

    - Nothing raises into PyAV's C callbacks: PyAV stashes such exceptions and may re-raise
      them from a later, unrelated call. A read error or the size limit is recorded, the
      decoder is shown end-of-file, and `raise_if_failed` raises the right error afterwards.
    - There is no `close`: PyAV closes the file object it was given, and this one is the
      caller's.
    - A seekable stream is presented from the caller's position, so a file object that was
      partly read already (a multipart body, say) decodes from where it stands.
    """

    def __init__(self, raw: BinaryIO, max_bytes: int | None, start: int | None) -> None:
        self._raw = raw
        self._max_bytes = max_bytes
        self._start = start
        self._consumed = 0
        self._pending = b""
        self.too_large = False
        self.error: OSError | None = None

    @classmethod
    def open(cls, raw: BinaryIO, max_bytes: int | None) -> _BoundedReader:
        """Wrap `raw`, raising EmptyAudioError or AudioTooLargeError before any decoding."""
        start = _seek_start(raw)
        if start is not None:
            try:
                end = raw.seek(0, os.SEEK_END)
                raw.seek(start)
            except OSError as exc:
                raise _unreadable(exc) from exc
            _check_size(end - start, max_bytes)
            return cls(raw, None, start)
        reader = cls(raw, max_bytes, None)
        reader._pending = reader._read_capped(_PEEK_BYTES)
        reader.raise_if_failed()
        if not reader._pending:
            raise EmptyAudioError("The input is empty (0 bytes); send a file that contains audio.")
        return reader

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._start is not None

    def read(self, size: int = -1) -> bytes:
        if self._pending:
            n = len(self._pending) if size < 0 else size
            chunk, self._pending = self._pending[:n], self._pending[n:]
            return chunk
        return self._read_capped(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        assert self._start is not None  # PyAV only seeks when seekable() says so
        try:
            if whence == os.SEEK_SET:
                offset += self._start
            return self._raw.seek(offset, whence) - self._start
        except OSError as exc:
            self.error = exc
            return -1

    def tell(self) -> int:
        assert self._start is not None
        try:
            return self._raw.tell() - self._start
        except OSError as exc:
            self.error = exc
            return -1

    def raise_if_failed(self, cause: BaseException | None = None) -> None:
        if self.too_large and self._max_bytes is not None:
            raise _too_large(self._max_bytes) from cause
        if self.error is not None:
            raise _unreadable(self.error) from self.error

    def _read_capped(self, size: int) -> bytes:
        if self.too_large or self.error is not None:
            return b""
        if self._max_bytes is not None:
            # One byte past the limit is enough to know the upload is over it.
            room = self._max_bytes + 1 - self._consumed
            size = room if size < 0 else min(size, room)
        try:
            data = self._raw.read(size) or b""
        except OSError as exc:
            self.error = exc
            return b""
        self._consumed += len(data)
        if self._max_bytes is not None and self._consumed > self._max_bytes:
            self.too_large = True
            return b""
        return data


def _seek_start(raw: BinaryIO) -> int | None:
    """The stream's position if it can seek, else None."""
    try:
        return raw.tell() if raw.seekable() else None
    except (AttributeError, OSError):
        # Duck-typed readers without seekable(), and pipes whose tell() fails, are streamed.
        return None


def _unreadable(exc: OSError) -> AudioDecodeError:
    return AudioDecodeError(
        f"The input could not be read ({exc.strerror or exc}); send the file again."
    )


# --- decoding ------------------------------------------------------------------------------


def _decode_input(
    target: str | io.BytesIO | _BoundedReader, max_duration_s: float | None, sample_rate: int
) -> np.ndarray:
    try:
        # Tags are not needed, and a badly encoded one must not fail the upload.
        container = av.open(target, mode="r", metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(
            f"The input is not audio that FFmpeg can decode ({_reason(exc)}); {_ACCEPTED}."
        ) from exc
    with container:
        stream = _audio_stream(container)
        audio = _concat(_decoded_samples(container, stream, sample_rate, max_duration_s))
    if audio.size == 0:
        raise EmptyAudioError(
            "The input has an audio stream but no audio samples; send a recording that "
            "contains sound."
        )
    # Float PCM inputs may hold NaN, inf or overs; the model must only ever see [-1, 1].
    np.nan_to_num(audio, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(audio, -1.0, 1.0, out=audio)


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    stream = container.streams.best("audio")
    if not isinstance(stream, av.audio.stream.AudioStream):
        raise AudioDecodeError(
            f"The input is not audio that FFmpeg can decode (no audio stream found); {_ACCEPTED}."
        )
    if stream.codec_context is None:
        raise AudioDecodeError(
            f"The input's audio codec ({stream.codec.name}) has no decoder here; {_ACCEPTED}."
        )
    return stream


def _decoded_samples(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    sample_rate: int,
    max_duration_s: float | None,
) -> Iterator[np.ndarray]:
    """Yield mono float32 chunks, stopping as soon as their total passes `max_duration_s`."""
    max_samples = None if max_duration_s is None else math.floor(max_duration_s * sample_rate)
    total = 0
    try:
        for frame in _resample_all(_MonoConverter(sample_rate), container.decode(stream)):
            samples = _frame_samples(frame)
            total += samples.size
            if max_samples is not None and total > max_samples:
                raise _too_long(max_samples / sample_rate)
            yield samples
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(
            f"The audio is corrupt or truncated and could not be decoded ({_reason(exc)}); "
            "re-export or re-upload the file."
        ) from exc


def _too_long(max_duration_s: float) -> AudioTooLongError:
    return AudioTooLongError(
        f"The audio is longer than the {max_duration_s:g}-second limit; split it into shorter "
        "recordings or send a shorter one."
    )


class _MonoConverter:
    """`av.AudioResampler` to float32 mono, tolerating inputs whose layout or rate changes.

    A resampler is fixed to the first frame's format, layout and rate and raises on any other.
    Streams joined end to end (mp3 from a stream recorder, a naive `cat` of two files) change
    mid-stream, so the converter drains the old resampler and starts a new one instead.
    """

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._resampler: av.AudioResampler | None = None
        self._source: tuple[str, str, int] | None = None

    def resample(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        if frame is None:
            return self._flush()
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        out = [] if source == self._source else self._flush()
        if self._resampler is None:
            self._resampler = av.AudioResampler(
                format="flt", layout="mono", rate=self._rate, options=_DOWNMIX
            )
            self._source = source
        return out + self._resampler.resample(frame)

    def _flush(self) -> list[av.AudioFrame]:
        if self._resampler is None:
            return []
        # A resampler with nothing to convert passes frames through and answers a flush
        # with [None].
        out = [f for f in self._resampler.resample(None) if f is not None]
        self._resampler = None
        self._source = None
        return out


def _resample_all(
    resampler: av.AudioResampler | _MonoConverter, frames: Iterable[av.AudioFrame]
) -> Iterator[av.AudioFrame]:
    """Every output frame of `frames` through `resampler`, flushed at the end."""
    for frame in frames:
        yield from resampler.resample(frame)
    yield from (f for f in resampler.resample(None) if f is not None)


def _frame_samples(frame: av.AudioFrame) -> np.ndarray:
    # Packed mono float: one row of samples.
    return frame.to_ndarray().reshape(-1)


def _concat(chunks: Iterator[np.ndarray]) -> np.ndarray:
    parts = list(chunks)
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def _reason(exc: av.error.FFmpegError) -> str:
    return (exc.strerror or type(exc).__name__).rstrip(".")
