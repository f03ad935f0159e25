"""Tests for `asrserve.engine.audio` on real speech (the 11 s JFK clip) in real encoded files.

Files are written with FFmpeg's own encoders (tests/support/media.py) and the reference waveform
is read with the standard library's `wave`, so nothing here checks the decoder against itself.
"""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path
from typing import BinaryIO, Final, Literal, cast

import av
import av.error
import numpy as np
import pytest

from asrserve.engine import (
    SAMPLE_RATE,
    AudioDecodeError,
    AudioError,
    AudioLimits,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    decode,
)
from asrserve.engine.audio import duration_of, float32_to_pcm16, pcm16_to_float32, resample
from asrserve.evaluation.devset import Clip
from tests.support.media import CONTAINERS, encode, read_wav, similarity

# Lossy encoders add up to ~1k samples of priming or padding; 128 ms covers every one here.
MAX_LAG = 2048
DURATION_TOLERANCE_S = 0.1


class Unseekable(io.RawIOBase):
    """A pipe-like stream: no seek, no tell, and it counts what was read from it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.bytes_read += len(chunk)
        return len(chunk)


class EndlessWav:
    """A wav stream that never ends (like a live capture piped in): a header, then silence."""

    def __init__(self, sample_rate: int = 16000) -> None:
        fmt = struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16)
        unknown = struct.pack("<I", 0xFFFFFFFF)
        self._header = b"RIFF" + unknown + b"WAVEfmt " + fmt + b"data" + unknown
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if self._header:
            chunk, self._header = self._header, b""
        else:
            chunk = bytes(size if size > 0 else 4096)
        self.bytes_read += len(chunk)
        return chunk


@pytest.fixture(scope="module")
def reference(jfk: Clip) -> np.ndarray:
    samples, rate = read_wav(jfk.audio)
    assert rate == SAMPLE_RATE
    assert samples.size == round(jfk.duration * rate)
    return samples


@pytest.fixture(scope="module")
def encoded(reference: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The JFK clip in every container, encoded once for the module."""
    folder = tmp_path_factory.mktemp("encoded")
    return {
        name: encode(reference, SAMPLE_RATE, name, folder / f"jfk.{spec.suffix}")
        for name, spec in CONTAINERS.items()
    }


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def assert_engine_input(audio: np.ndarray) -> None:
    assert isinstance(audio, np.ndarray)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert audio.size > 0
    assert np.all(np.isfinite(audio))
    assert float(np.abs(audio).max()) <= 1.0


def assert_same_speech(reference: np.ndarray, decoded: np.ndarray, *, min_ncc: float) -> None:
    """Same duration (within codec padding), same waveform, same level."""
    assert abs(duration_of(decoded) - duration_of(reference)) <= DURATION_TOLERANCE_S
    ncc, lag = similarity(reference, decoded, MAX_LAG)
    assert ncc > min_ncc, f"correlation {ncc:.4f} at lag {lag}"
    # A wrong downmix gain (FFmpeg's default is +3 dB for stereo) shows here, not in the ncc.
    assert rms(decoded) == pytest.approx(rms(reference), rel=0.1)


def assert_user_message(error: AudioError) -> None:
    message = str(error)
    assert message[0].isupper()
    assert message.endswith(".")
    assert ";" in message  # what was wrong; what to do


# --- every container ---------------------------------------------------------------------


@pytest.mark.parametrize("container", list(CONTAINERS))
def test_every_container_decodes_to_the_source_speech(
    container: str, encoded: dict[str, Path], reference: np.ndarray
) -> None:
    audio = decode(encoded[container])

    assert_engine_input(audio)
    if CONTAINERS[container].lossless:
        assert audio.size == reference.size
        np.testing.assert_allclose(audio, reference, atol=1e-6)
    else:
        assert_same_speech(reference, audio, min_ncc=0.98)


def test_the_encoded_files_are_what_they_claim(encoded: dict[str, Path]) -> None:
    # Guards the fixture: a helper silently writing wav everywhere would make the test above
    # prove nothing.
    for name, path in encoded.items():
        with av.open(str(path)) as container:
            codec = container.streams.audio[0].codec_context.codec
        assert codec.id == av.Codec(CONTAINERS[name].codec, "w").id, (name, codec.name)


# --- rates and channels ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "channels", "container", "min_ncc"),
    [
        (8000, 1, "wav", 0.99),
        (22050, 1, "wav", 0.999),
        (44100, 1, "flac", 0.999),
        (48000, 2, "wav", 0.999),
        (44100, 2, "mp3", 0.98),
        (48000, 2, "m4a", 0.98),
        (48000, 2, "webm", 0.98),
    ],
)
def test_any_rate_and_channel_count_comes_out_16k_mono(
    rate: int,
    channels: int,
    container: str,
    min_ncc: float,
    reference: np.ndarray,
    tmp_path: Path,
) -> None:
    path = encode(
        reference, SAMPLE_RATE, container, tmp_path / f"x.{container}", rate=rate, channels=channels
    )
    with av.open(str(path)) as source:
        stream = source.streams.audio[0]
        assert (stream.rate, stream.channels) == (rate, channels)

    audio = decode(path)

    assert_engine_input(audio)
    assert_same_speech(reference, audio, min_ncc=min_ncc)
    if CONTAINERS[container].lossless:
        assert audio.size == reference.size


def test_stereo_is_mixed_as_the_average_of_the_channels(
    reference: np.ndarray, tmp_path: Path
) -> None:
    stereo = np.stack([reference, 0.5 * reference])
    path = encode(stereo, SAMPLE_RATE, "wav", tmp_path / "stereo.wav", channels=2)

    audio = decode(path)

    np.testing.assert_allclose(audio, 0.75 * reference, atol=1e-4)


def test_a_stream_whose_rate_and_channels_change_midway_decodes_whole(
    reference: np.ndarray, tmp_path: Path
) -> None:
    # Two mp3 streams back to back (as a stream recorder or a naive `cat` makes them): 16 kHz
    # mono, then 44.1 kHz stereo. FFmpeg's resampler refuses a frame unlike its first one.
    first = encode(reference, SAMPLE_RATE, "mp3", tmp_path / "a.mp3").read_bytes()
    second = encode(reference, SAMPLE_RATE, "mp3", tmp_path / "b.mp3", rate=44100, channels=2)

    audio = decode(first + without_id3(second.read_bytes()))

    assert_engine_input(audio)
    assert duration_of(audio) == pytest.approx(2 * duration_of(reference), abs=0.2)
    assert similarity(reference, audio[: reference.size], MAX_LAG)[0] > 0.98
    assert similarity(reference, audio[-reference.size :], MAX_LAG)[0] > 0.98


def without_id3(mp3: bytes) -> bytes:
    """The mp3 without its leading ID3v2 tag (whose size is a 28-bit "syncsafe" integer)."""
    assert mp3[:3] == b"ID3"
    size = (mp3[6] << 21) | (mp3[7] << 14) | (mp3[8] << 7) | mp3[9]
    return mp3[10 + size :]


def test_decode_to_another_sample_rate(encoded: dict[str, Path], reference: np.ndarray) -> None:
    audio = decode(encoded["flac"], sample_rate=8000)

    assert audio.size == reference.size // 2
    assert duration_of(audio, 8000) == pytest.approx(duration_of(reference))


# --- sources -----------------------------------------------------------------------------


@pytest.mark.parametrize("container", list(CONTAINERS))
def test_path_bytes_and_file_object_give_identical_audio(
    container: str, encoded: dict[str, Path]
) -> None:
    path = encoded[container]
    data = path.read_bytes()
    from_path = decode(path)

    with path.open("rb") as fh:
        from_file = decode(fh)
        assert not fh.closed  # the caller's file stays the caller's

    for other in (
        decode(str(path)),
        decode(data),
        decode(bytearray(data)),
        decode(memoryview(data)),
        decode(io.BytesIO(data)),
        from_file,
    ):
        np.testing.assert_array_equal(other, from_path)


@pytest.mark.parametrize("container", ["wav", "flac", "ogg", "opus", "webm"])
def test_a_non_seekable_stream_decodes_like_the_file(
    container: str, encoded: dict[str, Path]
) -> None:
    data = encoded[container].read_bytes()

    np.testing.assert_array_equal(decode(cast(BinaryIO, Unseekable(data))), decode(data))


def test_a_file_object_decodes_from_its_current_position(encoded: dict[str, Path]) -> None:
    data = encoded["m4a"].read_bytes()
    stream = io.BytesIO(b"--multipart-preamble--" + data)
    stream.seek(len(b"--multipart-preamble--"))

    np.testing.assert_array_equal(decode(stream), decode(data))


# --- limits ------------------------------------------------------------------------------


def test_audio_over_the_duration_limit_is_refused(encoded: dict[str, Path]) -> None:
    with pytest.raises(AudioTooLongError) as caught:
        decode(encoded["mp3"], limits=AudioLimits(max_duration_s=5.0))
    assert "5-second" in str(caught.value)
    assert_user_message(caught.value)


def test_audio_under_the_duration_limit_is_accepted(encoded: dict[str, Path]) -> None:
    assert decode(encoded["flac"], limits=AudioLimits(max_duration_s=11.0)).size == 176000


@pytest.mark.timeout(30)
def test_duration_limit_stops_decoding_early() -> None:
    # An endless stream can only fail if the limit is checked while decoding.
    stream = EndlessWav()

    with pytest.raises(AudioTooLongError):
        decode(stream, limits=AudioLimits(max_bytes=None, max_duration_s=5.0))  # type: ignore[arg-type]

    assert stream.bytes_read < 6 * 2 * SAMPLE_RATE  # about 5 s of 16-bit samples, no more


@pytest.mark.parametrize("kind", ["path", "bytes", "file", "stream"])
def test_input_over_the_size_limit_is_refused(kind: str, encoded: dict[str, Path]) -> None:
    path = encoded["flac"]
    size = path.stat().st_size
    source: object = {
        "path": path,
        "bytes": path.read_bytes(),
        "file": io.BytesIO(path.read_bytes()),
        "stream": Unseekable(path.read_bytes()),
    }[kind]

    with pytest.raises(AudioTooLargeError) as caught:
        decode(source, limits=AudioLimits(max_bytes=size - 1))  # type: ignore[arg-type]
    assert_user_message(caught.value)


def test_a_stream_is_read_at_most_one_byte_past_the_size_limit(encoded: dict[str, Path]) -> None:
    stream = Unseekable(encoded["wav"].read_bytes())

    with pytest.raises(AudioTooLargeError):
        decode(cast(BinaryIO, stream), limits=AudioLimits(max_bytes=50_000))

    assert stream.bytes_read == 50_001


@pytest.mark.parametrize("kind", ["path", "bytes", "stream"])
def test_input_exactly_at_the_size_limit_is_accepted(kind: str, encoded: dict[str, Path]) -> None:
    path = encoded["wav"]
    data = path.read_bytes()
    source = {"path": path, "bytes": data, "stream": Unseekable(data)}[kind]

    assert decode(source, limits=AudioLimits(max_bytes=len(data))).size == 176000  # type: ignore[arg-type]


def test_no_limits() -> None:
    limits = AudioLimits(max_bytes=None, max_duration_s=None)
    assert decode(pcm_wav(np.full(1600, 0.25, dtype=np.float32)), limits=limits).size == 1600


# --- bad input ---------------------------------------------------------------------------


def pcm_wav(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A minimal 16-bit mono wav, built by hand."""
    data = float32_to_pcm16(samples)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
    riff = b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(riff)) + riff


@pytest.mark.parametrize(
    "source",
    [b"", bytearray(), io.BytesIO(b""), Unseekable(b"")],
    ids=["bytes", "bytearray", "file", "stream"],
)
def test_empty_input_is_refused(source: object) -> None:
    with pytest.raises(EmptyAudioError) as caught:
        decode(source)  # type: ignore[arg-type]
    assert_user_message(caught.value)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()

    with pytest.raises(EmptyAudioError):
        decode(path)


def test_a_valid_file_with_no_samples_is_refused() -> None:
    with pytest.raises(EmptyAudioError) as caught:
        decode(pcm_wav(np.zeros(0, dtype=np.float32)))
    assert "no audio samples" in str(caught.value)


NOT_AUDIO = {
    "random": np.random.default_rng(20240611).bytes(8192),
    "text": b"And so, my fellow Americans, ask not what your country can do for you.\n" * 40,
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64) + b"\x00\x00\x00\x00IEND\xaeB`\x82",
    "json": b'{"audio": "not really", "samples": [1, 2, 3]}',
}


@pytest.mark.parametrize("kind", list(NOT_AUDIO))
def test_input_that_is_not_audio_is_refused(kind: str, tmp_path: Path) -> None:
    data = NOT_AUDIO[kind]
    disguised = tmp_path / "upload.wav"  # a misleading name must not matter
    disguised.write_bytes(data)

    for source in (data, disguised, io.BytesIO(data)):
        with pytest.raises(AudioDecodeError) as caught:
            decode(source)
        assert_user_message(caught.value)
        assert "wav, flac, mp3" in str(caught.value)


def test_decode_errors_chain_the_ffmpeg_error() -> None:
    with pytest.raises(AudioDecodeError) as caught:
        decode(NOT_AUDIO["random"])
    assert isinstance(caught.value.__cause__, av.error.FFmpegError)


# What FFmpeg (pinned through av==18.1.0) makes of a cut file: either it decodes up to the cut
# without complaint and we return that audio, or it fails and so do we.
PREFIX: Final = "prefix"


@pytest.mark.parametrize(
    ("container", "cut", "outcome"),
    [
        ("wav", "half", PREFIX),
        ("wav", 100, PREFIX),
        ("flac", "half", AudioDecodeError),
        ("flac", 100, AudioDecodeError),
        ("mp3", "half", PREFIX),
        ("mp3", 100, AudioDecodeError),
        ("m4a", "half", AudioDecodeError),
        ("ogg", 100, AudioDecodeError),
    ],
)
def test_truncated_files(
    container: str,
    cut: Literal["half"] | int,
    outcome: Literal["prefix"] | type[AudioError],
    encoded: dict[str, Path],
    reference: np.ndarray,
) -> None:
    data = encoded[container].read_bytes()
    truncated = data[: len(data) // 2 if cut == "half" else cut]

    if outcome == PREFIX:
        audio = decode(truncated)
        assert_engine_input(audio)
        assert audio.size < reference.size
        if CONTAINERS[container].lossless:
            np.testing.assert_allclose(audio, reference[: audio.size], atol=1e-6)
        else:
            ncc, _ = similarity(reference[: audio.size], audio, MAX_LAG)
            assert ncc > 0.95
        if cut == "half":
            assert duration_of(audio) == pytest.approx(duration_of(reference) / 2, abs=0.5)
    else:
        with pytest.raises(outcome) as caught:
            decode(truncated)
        assert_user_message(caught.value)


def test_corrupt_data_mid_stream_is_refused(encoded: dict[str, Path]) -> None:
    data = encoded["mp3"].read_bytes()
    third = len(data) // 3
    corrupt = data[:third] + np.random.default_rng(1).bytes(5000) + data[third + 5000 :]

    with pytest.raises(AudioDecodeError) as caught:
        decode(corrupt)
    assert "corrupt or truncated" in str(caught.value)
    assert isinstance(caught.value.__cause__, av.error.FFmpegError)


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.wav"

    with pytest.raises(AudioDecodeError) as caught:
        decode(missing)
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="is a directory"):
        decode(tmp_path)


def test_a_path_is_a_local_file_even_when_it_looks_like_an_ffmpeg_protocol(
    encoded: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FFmpeg would read `concat:jfk.wav` as its concat protocol over a file named `jfk.wav`.
    monkeypatch.chdir(tmp_path)
    Path("concat:jfk.wav").write_bytes(encoded["wav"].read_bytes())

    np.testing.assert_array_equal(decode("concat:jfk.wav"), decode(encoded["wav"]))
    with pytest.raises(AudioDecodeError, match="No audio file exists"):
        decode("http://127.0.0.1:9/x.wav")


def test_out_of_range_float_samples_are_clipped_and_cleaned(tmp_path: Path) -> None:
    loud = np.array([0.0, 1.5, -3.0, np.nan, np.inf, 0.25], dtype=np.float32)
    path = tmp_path / "loud.wav"
    with av.open(str(path), mode="w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(loud[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in (*stream.encode(frame), *stream.encode(None)):
            out.mux(packet)

    np.testing.assert_array_equal(decode(path), [0.0, 1.0, -1.0, 0.0, 1.0, 0.25])


# --- PCM helpers -------------------------------------------------------------------------


def test_pcm16_round_trip_is_exact() -> None:
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()

    audio = pcm16_to_float32(pcm)

    assert audio.dtype == np.float32
    assert audio.min() == -1.0
    assert audio.max() < 1.0
    assert float32_to_pcm16(audio) == pcm


def test_pcm16_of_real_speech_matches_the_wav(jfk: Clip, reference: np.ndarray) -> None:
    with wave.open(str(jfk.audio), "rb") as wav:
        pcm = wav.readframes(wav.getnframes())

    np.testing.assert_array_equal(pcm16_to_float32(pcm), reference)
    np.testing.assert_array_equal(pcm16_to_float32(memoryview(bytearray(pcm))), reference)


def test_pcm16_conversion_values() -> None:
    assert pcm16_to_float32(struct.pack("<3h", 0, 16384, -32768)).tolist() == [0.0, 0.5, -1.0]
    assert float32_to_pcm16(np.array([0.0, 0.5, -1.0, 1.0, 2.0, -2.0])) == struct.pack(
        "<6h", 0, 16384, -32768, 32767, 32767, -32768
    )
    assert pcm16_to_float32(b"").size == 0


def test_pcm16_with_an_odd_byte_count_is_refused() -> None:
    with pytest.raises(AudioDecodeError, match="odd number of bytes") as caught:
        pcm16_to_float32(b"\x00\x01\x02")
    assert_user_message(caught.value)


# --- resample ----------------------------------------------------------------------------


@pytest.mark.parametrize(("from_rate", "to_rate"), [(48000, 16000), (8000, 16000), (44100, 16000)])
@pytest.mark.parametrize("size", [1, 3, 10, 80, 160, 480, 4410])
def test_resample_gives_the_right_length_for_any_chunk(
    size: int, from_rate: int, to_rate: int
) -> None:
    chunk = np.random.default_rng(size).uniform(-0.5, 0.5, size).astype(np.float32)

    out = resample(chunk, from_rate, to_rate)

    assert out.dtype == np.float32
    assert out.shape == (round(size * to_rate / from_rate),)


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "size"),
    [(48000, 16000, 480), (8000, 16000, 80), (44100, 16000, 441), (16000, 48000, 160)],
)
def test_resample_a_short_chunk_keeps_the_waveform(from_rate: int, to_rate: int, size: int) -> None:
    tone = np.sin(2 * np.pi * 440 * np.arange(size) / from_rate).astype(np.float32)

    out = resample(tone, from_rate, to_rate)

    expected = np.sin(2 * np.pi * 440 * np.arange(out.size) / to_rate)
    edge = out.size // 10  # the filter has no context beyond the chunk's ends
    np.testing.assert_allclose(out[edge:-edge], expected[edge:-edge], atol=0.01)


def test_resample_real_speech_there_and_back(reference: np.ndarray) -> None:
    up = resample(reference, 16000, 44100)
    back = resample(up, 44100, 16000)

    assert up.size == round(reference.size * 44100 / 16000)
    assert back.size == reference.size
    ncc, lag = similarity(reference, back, MAX_LAG)
    assert lag == 0
    assert ncc > 0.999


def test_resample_to_the_same_rate_copies(reference: np.ndarray) -> None:
    out = resample(reference, 16000, 16000)

    np.testing.assert_array_equal(out, reference)
    assert out is not reference


def test_resample_rejects_misuse() -> None:
    with pytest.raises(ValueError, match="1-D"):
        resample(np.zeros((2, 10), dtype=np.float32), 48000, 16000)
    with pytest.raises(ValueError, match="positive"):
        resample(np.zeros(10, dtype=np.float32), 0, 16000)


def test_duration_of(reference: np.ndarray) -> None:
    assert duration_of(reference) == 11.0
    assert duration_of(reference, 8000) == 22.0
    assert duration_of(np.zeros(0, dtype=np.float32)) == 0.0
