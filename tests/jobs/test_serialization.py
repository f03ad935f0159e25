"""Stored transcripts come back equal, field for field."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace

from asrserve.engine import Segment, Transcript, TranscriptInfo, Word
from asrserve.jobs.serialization import (
    transcript_from_json,
    transcript_to_dict,
    transcript_to_json,
)
from tests.jobs.conftest import make_transcript


def test_round_trip_is_lossless() -> None:
    base = make_transcript(duration=53.267, text="Shall I compare thee")
    odd = Segment(
        id=1,
        start=1 / 3,
        end=0.1 + 0.2,  # floats that print long must come back bit for bit
        text=" naïve café — 東京 ",
        words=(Word(start=1 / 3, end=0.30000000000000004, word=" 東京", probability=1e-300),),
        avg_logprob=-math.inf,
        no_speech_prob=5e-324,
        compression_ratio=2.4000000000000004,
        temperature=1.0,
        tokens=(0, 1, 2**31 - 1),
    )
    transcript = replace(base, segments=(*base.segments, odd))
    restored = transcript_from_json(transcript_to_json(transcript))
    assert restored == transcript
    assert isinstance(restored.segments, tuple)
    assert isinstance(restored.segments[1].words, tuple)
    assert isinstance(restored.segments[1].tokens, tuple)
    assert restored.text == transcript.text


def test_every_field_of_every_type_is_stored() -> None:
    data = json.loads(transcript_to_json(make_transcript()))
    assert set(data["info"]) == {f.name for f in fields(TranscriptInfo)}
    segment = data["segments"][0]
    assert set(segment) == {f.name for f in fields(Segment)}
    assert set(segment["words"][0]) == {f.name for f in fields(Word)}
    assert {f.name for f in fields(Transcript)} == {"info", "segments"}


def test_empty_transcript_round_trips() -> None:
    empty = Transcript(info=TranscriptInfo("en", 0.0, 0.0, 0.0))
    assert transcript_from_json(transcript_to_json(empty)) == empty
    assert transcript_to_dict(empty)["segments"] == []
