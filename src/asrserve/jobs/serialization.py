"""Transcripts as JSON for storage, without losing any field.

Unlike `engine.formats` (what users read), this keeps every field of every dataclass, so a
stored result renders exactly as a fresh one would in any format. Fields are discovered with
`dataclasses.fields`, so a field added to the engine's types is stored without a change here.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from asrserve.engine import Segment, Transcript, TranscriptInfo, Word

_VERSION = 1


def _plain(obj: Any) -> dict[str, Any]:
    # Shallow on purpose: nested dataclasses are converted by the callers, which know them.
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def transcript_to_dict(transcript: Transcript) -> dict[str, Any]:
    segments = []
    for segment in transcript.segments:
        data = _plain(segment)
        data["words"] = [_plain(w) for w in segment.words]
        data["tokens"] = list(segment.tokens)
        segments.append(data)
    return {"v": _VERSION, "info": _plain(transcript.info), "segments": segments}


def transcript_from_dict(data: dict[str, Any]) -> Transcript:
    if data.get("v") != _VERSION:
        raise ValueError(f"stored transcript has version {data.get('v')!r}, expected {_VERSION}")
    segments = tuple(
        Segment(
            **{
                **s,
                "words": tuple(Word(**w) for w in s["words"]),
                "tokens": tuple(s["tokens"]),
            }
        )
        for s in data["segments"]
    )
    return Transcript(info=TranscriptInfo(**data["info"]), segments=segments)


def transcript_to_json(transcript: Transcript) -> str:
    """Compact JSON holding every field; floats keep their exact value (repr round-trips)."""
    # allow_nan: a log-probability can be -inf, and lossless matters more than strict JSON here.
    return json.dumps(
        transcript_to_dict(transcript), ensure_ascii=False, separators=(",", ":"), allow_nan=True
    )


def transcript_from_json(text: str) -> Transcript:
    """The inverse of `transcript_to_json`: equal (==) to the transcript that was stored."""
    return transcript_from_dict(json.loads(text))
