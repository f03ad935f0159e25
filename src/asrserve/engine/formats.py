"""Render a Transcript as the output formats users ask for: json, verbose_json, text, srt, vtt.

One renderer serves the CLI, the HTTP API and job results, so a transcript reads the same
whichever way it was requested. The JSON shapes follow OpenAI's transcription API (`json` is
`{"text": ...}`, `verbose_json` adds task, language, duration, segments and words) with a few
extra keys of ours, which OpenAI's clients ignore. Subtitles follow SubRip and WebVTT as
players parse them: every cue has a positive duration, one cue per non-empty segment, and text
that cannot end or break a cue.

Nothing here knows about transports: callers pick the bytes' media type with `media_type` and a
file name with `file_extension`.
"""

from __future__ import annotations

import html
import json
import math
import textwrap
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from asrserve.engine.errors import InvalidOptionError
from asrserve.engine.types import Segment, Transcript, Word

__all__ = [
    "ResponseFormat",
    "file_extension",
    "language_name",
    "media_type",
    "parse_format",
    "render",
    "to_dict",
]


class ResponseFormat(StrEnum):
    """The output formats, named as OpenAI's `response_format` names them."""

    JSON = "json"
    VERBOSE_JSON = "verbose_json"
    TEXT = "text"
    SRT = "srt"
    VTT = "vtt"


_JSON_FORMATS = frozenset({ResponseFormat.JSON, ResponseFormat.VERBOSE_JSON})

_EXTENSIONS: dict[ResponseFormat, str] = {
    ResponseFormat.JSON: "json",
    ResponseFormat.VERBOSE_JSON: "json",
    ResponseFormat.TEXT: "txt",
    ResponseFormat.SRT: "srt",
    ResponseFormat.VTT: "vtt",
}

_MEDIA_TYPES: dict[ResponseFormat, str] = {
    ResponseFormat.JSON: "application/json",
    ResponseFormat.VERBOSE_JSON: "application/json",
    ResponseFormat.TEXT: "text/plain; charset=utf-8",
    ResponseFormat.SRT: "application/x-subrip",
    ResponseFormat.VTT: "text/vtt",
}

# Whisper's language codes and the lowercase English names OpenAI returns in verbose_json.
_LANGUAGE_NAMES: dict[str, str] = {
    "en": "english",
    "zh": "chinese",
    "de": "german",
    "es": "spanish",
    "ru": "russian",
    "ko": "korean",
    "fr": "french",
    "ja": "japanese",
    "pt": "portuguese",
    "tr": "turkish",
    "pl": "polish",
    "ca": "catalan",
    "nl": "dutch",
    "ar": "arabic",
    "sv": "swedish",
    "it": "italian",
    "id": "indonesian",
    "hi": "hindi",
    "fi": "finnish",
    "vi": "vietnamese",
    "he": "hebrew",
    "uk": "ukrainian",
    "el": "greek",
    "ms": "malay",
    "cs": "czech",
    "ro": "romanian",
    "da": "danish",
    "hu": "hungarian",
    "ta": "tamil",
    "no": "norwegian",
    "th": "thai",
    "ur": "urdu",
    "hr": "croatian",
    "bg": "bulgarian",
    "lt": "lithuanian",
    "la": "latin",
    "mi": "maori",
    "ml": "malayalam",
    "cy": "welsh",
    "sk": "slovak",
    "te": "telugu",
    "fa": "persian",
    "lv": "latvian",
    "bn": "bengali",
    "sr": "serbian",
    "az": "azerbaijani",
    "sl": "slovenian",
    "kn": "kannada",
    "et": "estonian",
    "mk": "macedonian",
    "br": "breton",
    "eu": "basque",
    "is": "icelandic",
    "hy": "armenian",
    "ne": "nepali",
    "mn": "mongolian",
    "bs": "bosnian",
    "kk": "kazakh",
    "sq": "albanian",
    "sw": "swahili",
    "gl": "galician",
    "mr": "marathi",
    "pa": "punjabi",
    "si": "sinhala",
    "km": "khmer",
    "sn": "shona",
    "yo": "yoruba",
    "so": "somali",
    "af": "afrikaans",
    "oc": "occitan",
    "ka": "georgian",
    "be": "belarusian",
    "tg": "tajik",
    "sd": "sindhi",
    "gu": "gujarati",
    "am": "amharic",
    "yi": "yiddish",
    "lo": "lao",
    "uz": "uzbek",
    "fo": "faroese",
    "ht": "haitian creole",
    "ps": "pashto",
    "tk": "turkmen",
    "nn": "nynorsk",
    "mt": "maltese",
    "sa": "sanskrit",
    "lb": "luxembourgish",
    "my": "myanmar",
    "bo": "tibetan",
    "tl": "tagalog",
    "mg": "malagasy",
    "as": "assamese",
    "tt": "tatar",
    "haw": "hawaiian",
    "ln": "lingala",
    "ha": "hausa",
    "ba": "bashkir",
    "jw": "javanese",
    "su": "sundanese",
    "yue": "cantonese",
}


def parse_format(name: str | ResponseFormat) -> ResponseFormat:
    """Return the format called `name` (case and surrounding spaces ignored)."""
    if isinstance(name, ResponseFormat):
        return name
    try:
        return ResponseFormat(str(name).strip().lower())
    except ValueError:
        valid = ", ".join(f.value for f in ResponseFormat)
        raise InvalidOptionError(
            f"response_format {name!r} is not supported; use one of {valid}."
        ) from None


def file_extension(fmt: ResponseFormat | str) -> str:
    """File name extension (no dot) for output in `fmt`: json, txt, srt or vtt."""
    return _EXTENSIONS[parse_format(fmt)]


def media_type(fmt: ResponseFormat | str) -> str:
    """HTTP media type for output in `fmt`."""
    return _MEDIA_TYPES[parse_format(fmt)]


def language_name(code: str) -> str:
    """OpenAI's lowercase English name for a Whisper language code, or the code if unknown.

    Region tags from other engines ("en-US", "ko_KR") fall back to their primary language.
    """
    key = code.strip().lower()
    if key in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[key]
    primary = key.replace("_", "-").split("-", 1)[0]
    return _LANGUAGE_NAMES.get(primary, code)


def render(
    transcript: Transcript,
    fmt: ResponseFormat | str,
    *,
    include_words: bool = True,
    include_segments: bool = True,
    line_width: int | None = None,
) -> str:
    """Render `transcript` as `fmt`.

    `include_words` and `include_segments` shape verbose_json only (OpenAI's
    `timestamp_granularities`); the other formats ignore them. `line_width` wraps srt and vtt
    cue text at spaces to lines of at most that many characters (42 is common subtitle
    practice); the default None keeps each cue on one line, as OpenAI does, so the text
    round-trips exactly. Words longer than the width, and text without spaces such as
    Japanese, are not broken.
    """
    fmt = parse_format(fmt)
    if fmt in _JSON_FORMATS:
        data = to_dict(
            transcript, fmt, include_words=include_words, include_segments=include_segments
        )
        # Non-ASCII text stays readable: the body is UTF-8, which JSON's media type implies.
        return json.dumps(data, ensure_ascii=False)
    if fmt is ResponseFormat.TEXT:
        return transcript.text + "\n"
    _check_line_width(line_width)
    if fmt is ResponseFormat.SRT:
        return _render_srt(transcript, line_width)
    return _render_vtt(transcript, line_width)


def to_dict(
    transcript: Transcript,
    fmt: ResponseFormat | str = ResponseFormat.VERBOSE_JSON,
    *,
    include_words: bool = True,
    include_segments: bool = True,
) -> dict[str, Any]:
    """The JSON object for `fmt` (json or verbose_json), built from plain Python types."""
    fmt = parse_format(fmt)
    if fmt not in _JSON_FORMATS:
        raise InvalidOptionError(
            f"response_format {fmt.value!r} is not JSON; use json or verbose_json for an object."
        )
    if fmt is ResponseFormat.JSON:
        return {"text": transcript.text}
    return _verbose(transcript, include_words=include_words, include_segments=include_segments)


# --- verbose_json -------------------------------------------------------------------------


def _verbose(
    transcript: Transcript, *, include_words: bool, include_segments: bool
) -> dict[str, Any]:
    info = transcript.info
    data: dict[str, Any] = {
        "task": info.task,
        "language": language_name(info.language),
        "duration": _seconds(info.duration),
        "text": transcript.text,
    }
    # OpenAI leaves out the granularities that were not asked for, rather than sending nulls.
    if include_segments:
        data["segments"] = [_segment_dict(s) for s in transcript.segments]
    if include_words:
        data["words"] = [_word_dict(w) for w in transcript.words]
    data["language_code"] = info.language
    data["language_probability"] = float(info.language_probability)
    data["language_source"] = info.language_source
    return data


def _segment_dict(segment: Segment) -> dict[str, Any]:
    # float()/int() because engines may hand over numpy scalars, which json cannot encode.
    return {
        "id": int(segment.id),
        # Our segments do not keep Whisper's 30 s window offset; the start in 10 ms frames is
        # the nearest equivalent and satisfies clients that read `seek` as an int.
        "seek": round(float(segment.start) * 100),
        "start": _seconds(segment.start),
        "end": _seconds(segment.end),
        "text": segment.text,
        "tokens": [int(t) for t in segment.tokens],
        "temperature": float(segment.temperature),
        "avg_logprob": float(segment.avg_logprob),
        "compression_ratio": float(segment.compression_ratio),
        "no_speech_prob": float(segment.no_speech_prob),
    }


def _word_dict(word: Word) -> dict[str, Any]:
    return {
        "word": word.word.strip(),
        "start": _seconds(word.start),
        "end": _seconds(word.end),
        "probability": float(word.probability),
    }


def _seconds(value: float) -> float:
    return round(float(value), 3)


# --- subtitles ----------------------------------------------------------------------------


def _render_srt(transcript: Transcript, line_width: int | None) -> str:
    blocks = [
        f"{number}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n" + "\n".join(lines)
        for number, (start, end, lines) in enumerate(
            _cues(transcript, line_width, _srt_safe), start=1
        )
    ]
    # Each cue, the last included, ends with a blank line, as SubRip writers do.
    return "".join(block + "\n\n" for block in blocks)


def _render_vtt(transcript: Transcript, line_width: int | None) -> str:
    blocks = [
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n" + "\n".join(lines)
        for start, end, lines in _cues(transcript, line_width, _vtt_safe)
    ]
    return "WEBVTT\n" + "".join("\n" + block + "\n" for block in blocks)


def _cues(
    transcript: Transcript, line_width: int | None, escape: Callable[[str], str]
) -> list[tuple[int, int, list[str]]]:
    """(start ms, end ms, text lines) per segment that has text, times made valid for players."""
    cues = []
    for segment in transcript.segments:
        lines = [escape(line) for line in _text_lines(segment.text, line_width)]
        if not lines:
            continue
        start = max(_milliseconds(segment.start), 0)
        # Parsers reject or drop cues that end before they start; 1 ms keeps the words on screen
        # at the right moment instead of losing them.
        end = max(_milliseconds(segment.end), start + 1)
        cues.append((start, end, lines))
    return cues


def _text_lines(text: str, line_width: int | None) -> list[str]:
    # A blank line ends a cue in both formats, so line breaks in the text survive but empty
    # (or all-space) lines do not.
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if line_width is None:
        return lines
    return [
        wrapped
        for line in lines
        for wrapped in textwrap.wrap(
            line, line_width, break_long_words=False, break_on_hyphens=False
        )
    ]


def _srt_safe(line: str) -> str:
    # SubRip has no escaping, and a line holding the arrow reads as a new cue's timings. The loop
    # matters: replacing inside "---->" leaves "--->", which still holds an arrow.
    while "-->" in line:
        line = line.replace("-->", "->")
    return line


def _vtt_safe(line: str) -> str:
    # WebVTT requires & and < escaped; escaping > too turns "-->" into "--&gt;", which players
    # show as the arrow the speaker's text had without it ending the cue's timings.
    return html.escape(line, quote=False)


def _milliseconds(seconds: float) -> int:
    value = float(seconds)
    # A NaN or infinite time from a broken engine must not abort a whole subtitle file.
    return round(value * 1000) if math.isfinite(value) else 0


def _timestamp(milliseconds: int, decimal_mark: str) -> str:
    # Hours take as many digits as they need: both formats' parsers accept more than two.
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_mark}{millis:03d}"


def _check_line_width(line_width: int | None) -> None:
    if line_width is not None and line_width < 1:
        raise InvalidOptionError(
            f"line_width {line_width} is too small; use a positive number of characters "
            "(42 is common for subtitles) or leave it unset for one line per cue."
        )
