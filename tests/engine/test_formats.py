"""Unit tests for the output formats, on hand-built transcripts.

Subtitles are parsed back with the `srt` and `webvtt-py` libraries (strict where they offer it),
so "valid" here means what real parsers accept, not what our own code expects.
"""

from __future__ import annotations

import html
import json
from typing import cast

import numpy as np
import pytest
import srt
import webvtt

from asrserve.engine import (
    InvalidOptionError,
    ResponseFormat,
    Segment,
    Transcript,
    TranscriptInfo,
    Word,
    parse_format,
    render,
    to_dict,
)
from asrserve.engine.formats import file_extension, language_name, media_type

# The keys of OpenAI's verbose_json response, and the extras we add beside them.
OPENAI_TOP_KEYS = {"task", "language", "duration", "text", "segments", "words"}
EXTRA_TOP_KEYS = {"language_code", "language_probability", "language_source"}
OPENAI_SEGMENT_KEYS = {
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
}
OPENAI_WORD_KEYS = {"word", "start", "end"}
EXTRA_WORD_KEYS = {"probability"}


def make_transcript(
    *spans: tuple[float, float, str],
    language: str = "en",
    duration: float | None = None,
    task: str = "transcribe",
) -> Transcript:
    """A transcript with one segment per (start, end, text) and one Word per space-split word."""
    segments = []
    for index, (start, end, text) in enumerate(spans):
        pieces = [" " + p for p in text.split()]
        step = (end - start) / max(len(pieces), 1)
        words = tuple(
            Word(start=start + i * step, end=start + (i + 1) * step, word=p, probability=0.9)
            for i, p in enumerate(pieces)
        )
        segments.append(
            Segment(
                id=index,
                start=start,
                end=end,
                text=text,
                words=words,
                avg_logprob=-0.25,
                no_speech_prob=0.01,
                compression_ratio=1.4,
                temperature=0.0,
                tokens=(50364, 400, 1002),
            )
        )
    last_end = max((end for _, end, _ in spans), default=0.0)
    info = TranscriptInfo(
        language=language,
        language_probability=0.97,
        duration=last_end if duration is None else duration,
        speech_duration=last_end,
        task=task,
    )
    return Transcript(info=info, segments=tuple(segments))


def srt_cues(body: str) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) for each cue; srt.parse raises on anything it cannot read."""
    return [
        (
            int(sub.start.total_seconds() * 1000 + 0.5),
            int(sub.end.total_seconds() * 1000 + 0.5),
            sub.content,
        )
        for sub in srt.parse(body)
    ]


def vtt_cues(body: str) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) for each cue, parsed strictly, with entities decoded."""
    captions = webvtt.from_string(body, strict=True).captions
    return [
        (c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), html.unescape(c.text))
        for c in captions
    ]


SUBTITLE_PARSERS = {"srt": srt_cues, "vtt": vtt_cues}


# --- format names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["json", "verbose_json", "text", "srt", "vtt"])
def test_parse_format_accepts_every_openai_name(name: str) -> None:
    assert parse_format(name) is ResponseFormat(name)
    assert parse_format(name) == name


def test_parse_format_ignores_case_and_spaces() -> None:
    assert parse_format("  SRT ") is ResponseFormat.SRT
    assert parse_format(ResponseFormat.VTT) is ResponseFormat.VTT


@pytest.mark.parametrize("name", ["xml", "", "txt", "verbose-json"])
def test_parse_format_rejects_unknown_names_with_the_valid_ones(name: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        parse_format(name)
    message = str(info.value)
    assert repr(name) in message
    for valid in ("json", "verbose_json", "text", "srt", "vtt"):
        assert valid in message
    assert message.endswith(".")


def test_render_rejects_unknown_format() -> None:
    with pytest.raises(InvalidOptionError):
        render(make_transcript((0.0, 1.0, " Hi.")), "docx")


@pytest.mark.parametrize(
    ("fmt", "extension", "media"),
    [
        ("json", "json", "application/json"),
        ("verbose_json", "json", "application/json"),
        ("text", "txt", "text/plain; charset=utf-8"),
        ("srt", "srt", "application/x-subrip"),
        ("vtt", "vtt", "text/vtt"),
    ],
)
def test_file_extension_and_media_type(fmt: str, extension: str, media: str) -> None:
    assert file_extension(fmt) == extension
    assert file_extension(ResponseFormat(fmt)) == extension
    assert media_type(fmt) == media


# --- json and text --------------------------------------------------------------------------


def test_json_is_openais_minimal_shape() -> None:
    t = make_transcript((0.0, 2.0, " And so, my fellow Americans,"), (2.0, 4.0, " ask not."))
    body = render(t, "json")
    assert json.loads(body) == {"text": "And so, my fellow Americans, ask not."}
    assert to_dict(t, "json") == {"text": "And so, my fellow Americans, ask not."}


def test_text_is_the_transcript_plus_a_newline() -> None:
    t = make_transcript((0.0, 2.0, " Hello there."), (2.0, 3.0, "   "), (3.0, 4.0, " Bye."))
    assert render(t, ResponseFormat.TEXT) == "Hello there. Bye.\n"


def test_to_dict_refuses_non_json_formats() -> None:
    with pytest.raises(InvalidOptionError, match="not JSON"):
        to_dict(make_transcript((0.0, 1.0, " Hi.")), "srt")


# --- verbose_json ---------------------------------------------------------------------------


def test_verbose_json_has_openais_keys_and_types() -> None:
    t = make_transcript(
        (0.0, 2.5, " Ask not what your country can do for you,"),
        (2.5, 4.125, " ask what you can do for your country."),
        duration=11.0,
    )
    data = json.loads(render(t, "verbose_json"))

    assert set(data) == OPENAI_TOP_KEYS | EXTRA_TOP_KEYS
    assert data["task"] == "transcribe"
    assert data["language"] == "english"
    assert data["language_code"] == "en"
    assert data["language_probability"] == pytest.approx(0.97)
    assert data["duration"] == 11.0
    assert data["text"] == t.text

    assert len(data["segments"]) == 2
    for seg in data["segments"]:
        assert set(seg) == OPENAI_SEGMENT_KEYS
        assert isinstance(seg["id"], int)
        assert isinstance(seg["seek"], int)
        assert all(isinstance(seg[k], float) for k in ("start", "end", "temperature"))
        assert all(
            isinstance(seg[k], float)
            for k in ("avg_logprob", "compression_ratio", "no_speech_prob")
        )
        assert isinstance(seg["text"], str)
        assert all(isinstance(tok, int) for tok in seg["tokens"])
    # OpenAI keeps Whisper's leading space on segment text.
    assert data["segments"][1]["text"] == " ask what you can do for your country."
    assert data["segments"][1]["start"] == 2.5
    assert data["segments"][1]["seek"] == 250

    assert len(data["words"]) == len(t.words) == 17
    for word in data["words"]:
        assert set(word) == OPENAI_WORD_KEYS | EXTRA_WORD_KEYS
        assert isinstance(word["word"], str)
        assert all(isinstance(word[k], float) for k in ("start", "end", "probability"))
    # Words lose the leading space but keep their punctuation.
    assert [w["word"] for w in data["words"][-2:]] == ["your", "country."]


def test_verbose_json_rounds_times_to_milliseconds() -> None:
    t = make_transcript((1.23456789, 2.0004999, " Hi."), duration=2.71828)
    data = to_dict(t)
    assert data["duration"] == 2.718
    assert (data["segments"][0]["start"], data["segments"][0]["end"]) == (1.235, 2.0)
    assert data["words"][0]["start"] == 1.235


def test_verbose_json_leaves_out_granularities_not_asked_for() -> None:
    t = make_transcript((0.0, 1.0, " Hi there."))
    no_words = to_dict(t, include_words=False)
    assert "words" not in no_words
    assert len(no_words["segments"]) == 1
    no_segments = to_dict(t, include_segments=False)
    assert "segments" not in no_segments
    assert len(no_segments["words"]) == 2
    # The other formats ignore the flags.
    assert render(t, "srt", include_segments=False) == render(t, "srt")


def test_verbose_json_encodes_numpy_scalars_from_engines() -> None:
    # Engines hand over numpy scalars where the types say float/int (np.float64 alone is a
    # float subclass): the casts let them through as they are, which is what is tested here.
    word = Word(
        start=cast(float, np.float32(0.5)),
        end=np.float64(0.75),
        word=" Hi.",
        probability=cast(float, np.float32(0.5)),
    )
    segment = Segment(
        id=cast(int, np.int64(0)),
        start=cast(float, np.float32(0.5)),
        end=cast(float, np.float32(0.75)),
        text=" Hi.",
        words=(word,),
        avg_logprob=cast(float, np.float32(-0.5)),
        tokens=(cast(int, np.int32(7)),),
    )
    info = TranscriptInfo("en", cast(float, np.float32(0.5)), cast(float, np.float32(1.0)), 1.0)
    data = json.loads(render(Transcript(info=info, segments=(segment,)), "verbose_json"))
    assert data["segments"][0]["tokens"] == [7]
    assert data["words"][0] == {"word": "Hi.", "start": 0.5, "end": 0.75, "probability": 0.5}


def test_verbose_json_for_translation_and_empty_transcript() -> None:
    data = to_dict(make_transcript(language="cs", task="translate"))
    assert data["task"] == "translate"
    assert data["language"] == "czech"
    assert data["text"] == ""
    assert data["segments"] == []
    assert data["words"] == []


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("en", "english"),
        ("ja", "japanese"),
        ("cs", "czech"),
        ("yue", "cantonese"),
        ("haw", "hawaiian"),
        ("jw", "javanese"),
        ("en-US", "english"),
        ("ko_KR", "korean"),
        ("xx", "xx"),
        ("", ""),
    ],
)
def test_language_name(code: str, name: str) -> None:
    assert language_name(code) == name


def test_language_names_cover_every_whisper_language() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    unnamed = [code for code in _LANGUAGE_CODES if language_name(code) == code]
    assert unnamed == []


def test_unknown_language_code_is_returned_as_is() -> None:
    data = to_dict(make_transcript((0.0, 1.0, " Hi."), language="tlh"))
    assert data["language"] == data["language_code"] == "tlh"


# --- subtitles: round trips through real parsers -----------------------------------------


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_round_trip_times_and_text(fmt: str) -> None:
    t = make_transcript(
        (0.0, 2.5, " And so, my fellow Americans,"),
        (2.5, 4.321, " ask not what your country can do for you,"),
        (4.5, 10.999, " ask what you can do for your country."),
    )
    cues = SUBTITLE_PARSERS[fmt](render(t, fmt))
    assert cues == [
        (0, 2500, "And so, my fellow Americans,"),
        (2500, 4321, "ask not what your country can do for you,"),
        (4500, 10999, "ask what you can do for your country."),
    ]


def test_srt_layout() -> None:
    t = make_transcript((0.0, 1.5, " One."), (1.5, 3.0, " Two."))
    assert render(t, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,500\nOne.\n\n2\n00:00:01,500 --> 00:00:03,000\nTwo.\n\n"
    )


def test_vtt_layout() -> None:
    t = make_transcript((0.0, 1.5, " One."), (1.5, 3.0, " Two."))
    assert render(t, "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nOne.\n\n00:00:01.500 --> 00:00:03.000\nTwo.\n"
    )


def test_hours_are_formatted_and_parse_back() -> None:
    t = make_transcript((3725.5, 3727.25, " Later on."))
    assert "01:02:05,500 --> 01:02:07,250" in render(t, "srt")
    assert "01:02:05.500 --> 01:02:07.250" in render(t, "vtt")
    assert srt_cues(render(t, "srt")) == [(3_725_500, 3_727_250, "Later on.")]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_more_than_99_hours(fmt: str) -> None:
    t = make_transcript((360_000.0, 360_001.0, " Still going."))
    body = render(t, fmt)
    assert "100:00:00" in body
    assert SUBTITLE_PARSERS[fmt](body) == [(360_000_000, 360_001_000, "Still going.")]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_zero_length_and_inverted_cues_get_one_millisecond(fmt: str) -> None:
    t = make_transcript(
        (1.0, 1.0, " Zero."), (3.0, 2.0, " Inverted."), (-0.5, 0.25, " Before zero.")
    )
    cues = SUBTITLE_PARSERS[fmt](render(t, fmt))
    assert cues == [(1000, 1001, "Zero."), (3000, 3001, "Inverted."), (0, 250, "Before zero.")]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_segments_without_text_are_skipped(fmt: str) -> None:
    t = make_transcript(
        (0.0, 1.0, " One."), (1.0, 2.0, ""), (2.0, 3.0, " \n "), (3.0, 4.0, " Two.")
    )
    body = render(t, fmt)
    assert SUBTITLE_PARSERS[fmt](body) == [(0, 1000, "One."), (3000, 4000, "Two.")]
    if fmt == "srt":
        # Numbering stays consecutive across the skipped segments.
        assert [sub.index for sub in srt.parse(body)] == [1, 2]


def test_empty_transcript_renders_valid_empty_files() -> None:
    t = make_transcript()
    assert render(t, "srt") == ""
    assert render(t, "vtt") == "WEBVTT\n"
    assert vtt_cues(render(t, "vtt")) == []
    assert json.loads(render(t, "json")) == {"text": ""}


def test_arrow_in_srt_text_cannot_start_a_cue() -> None:
    t = make_transcript((0.0, 1.0, " a --> b ----> c"), (1.0, 2.0, " -->"))
    body = render(t, "srt")
    cues = srt_cues(body)
    assert [c[2] for c in cues] == ["a -> b -> c", "->"]
    assert body.count("-->") == 2  # only the two timing lines


def test_vtt_escapes_markup_and_arrow_and_parses_back() -> None:
    text = " AT&T said <b>x</b> --> 1 < 2 > 0"
    body = render(make_transcript((0.0, 1.0, text)), "vtt")
    assert "--&gt;" in body
    assert body.count("-->") == 1
    assert vtt_cues(body) == [(0, 1000, text.strip())]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_blank_lines_in_text_do_not_split_the_cue(fmt: str) -> None:
    t = make_transcript((0.0, 1.0, " First line.\n\n  \nSecond line.\r\n"), (1.0, 2.0, " Next."))
    cues = SUBTITLE_PARSERS[fmt](render(t, fmt))
    assert cues == [(0, 1000, "First line.\nSecond line."), (1000, 2000, "Next.")]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_unicode_text_is_preserved(fmt: str) -> None:
    japanese = "こんにちは、世界。今日は　いい天気ですね。"
    czech = "Příliš žluťoučký kůň úpěl ďábelské ódy."
    t = make_transcript((0.0, 2.0, japanese), (2.0, 4.0, " " + czech), language="ja")
    cues = SUBTITLE_PARSERS[fmt](render(t, fmt, line_width=42))
    assert [c[2] for c in cues] == [japanese, czech]


def test_unicode_text_in_json_and_text() -> None:
    t = make_transcript((0.0, 2.0, " Dobrý den, jak se máte?"), language="cs")
    body = render(t, "verbose_json")
    assert "Dobrý den" in body  # not \u-escaped
    assert json.loads(body)["language"] == "czech"
    assert render(t, "text") == "Dobrý den, jak se máte?\n"


# --- line wrapping --------------------------------------------------------------------------

LONG = (
    " So tonight, my fellow citizens, I ask you to join me in a simple, solemn promise that we"
    " will keep faith with those who came before us."
)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_long_text_stays_on_one_line_by_default(fmt: str) -> None:
    cues = SUBTITLE_PARSERS[fmt](render(make_transcript((0.0, 9.0, LONG)), fmt))
    assert cues == [(0, 9000, LONG.strip())]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_line_width_wraps_at_spaces(fmt: str) -> None:
    cues = SUBTITLE_PARSERS[fmt](render(make_transcript((0.0, 9.0, LONG)), fmt, line_width=42))
    assert len(cues) == 1
    lines = cues[0][2].split("\n")
    assert len(lines) > 1
    assert all(0 < len(line) <= 42 for line in lines)
    assert " ".join(lines) == LONG.strip()


def test_line_width_does_not_break_long_words() -> None:
    word = "Donaudampfschifffahrtsgesellschaftskapitän"
    cues = srt_cues(render(make_transcript((0.0, 1.0, f" {word} ok")), "srt", line_width=10))
    assert cues[0][2] == f"{word}\nok"


@pytest.mark.parametrize("width", [0, -3])
def test_line_width_must_be_positive(width: int) -> None:
    with pytest.raises(InvalidOptionError, match="line_width"):
        render(make_transcript((0.0, 1.0, " Hi.")), "vtt", line_width=width)
