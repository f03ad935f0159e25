"""FunASR's WebSocket protocol: what clients send, what we answer (shared/protocols doc).

Kept exactly as FunASR's runtime speaks it so its many clients (Python, C++, Java, HTML5, ...)
work unchanged; our additions are extra keys, which those clients ignore.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from asrserve.engine import Final, Mode, Partial, parse_language

MODES = {m.value for m in Mode}


class ProtocolError(Exception):
    """A client message we cannot act on; the text is sent back in the error message."""


class ClientConfig(BaseModel):
    """The first text frame (and any later one: unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    mode: str = "2pass"
    chunk_size: list[int] = Field(default_factory=lambda: [5, 10, 5])
    chunk_interval: int = 10
    wav_name: str = "microphone"
    wav_format: str = "pcm"
    audio_fs: int = 16000
    is_speaking: bool = True
    is_end: bool = False
    hotwords: str | dict[str, Any] | list[str] | None = None
    itn: bool = True
    svs_lang: str | None = None
    """The language for multilingual models (FunASR's SenseVoice key); `auto` detects."""

    @field_validator("chunk_size", mode="before")
    @classmethod
    def _chunk_size(cls, value: object) -> object:
        # FunASR's Python server takes "5,10,5" as well as [5, 10, 5].
        if isinstance(value, str):
            return [int(v) for v in value.replace(" ", "").split(",") if v]
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in MODES:
            raise ValueError(f"mode must be offline, online or 2pass, not {value!r}")
        return value

    @field_validator("audio_fs")
    @classmethod
    def _rate(cls, value: int) -> int:
        if not 4000 <= value <= 192000:
            raise ValueError(f"audio_fs {value} is not a sample rate we can resample from")
        return value

    @field_validator("wav_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return value[:256]

    @property
    def is_pcm(self) -> bool:
        return self.wav_format.lower() == "pcm"

    @property
    def language(self) -> str | None:
        return parse_language(self.svs_lang)


def parse_text_frame(text: str) -> tuple[dict[str, Any], ClientConfig | None]:
    """The JSON of a text frame, and a config when it carries one (any key but the speaking
    flags). Raises ProtocolError with a sentence for the client."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"The message is not JSON ({exc.msg} at {exc.pos}).") from exc
    if not isinstance(data, dict):
        raise ProtocolError("A text message must be a JSON object.")
    if set(data) - {"is_speaking", "is_end", "is_finished"}:
        try:
            return data, ClientConfig.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ProtocolError(f"Bad configuration: {where}: {first['msg']}.") from exc
    return data, None


def is_end_message(data: dict[str, Any]) -> bool:
    return (
        data.get("is_speaking") is False
        or bool(data.get("is_end"))
        or bool(data.get("is_finished"))
    )


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def partial_message(mode: str, wav_name: str, delta: str, partial: Partial) -> dict[str, Any]:
    """FunASR sends partial text as deltas that clients append; `utterance_text` (ours) is the
    whole current hypothesis, for clients that would rather replace than append."""
    return {
        "mode": "2pass-online" if mode == Mode.TWO_PASS else "online",
        "wav_name": wav_name,
        "text": delta,
        "is_final": False,
        "utterance": partial.utterance,
        "utterance_text": partial.text,
        "start_time": _ms(partial.start),
        "end_time": _ms(partial.end),
    }


def final_message(mode: str, wav_name: str, final: Final, *, is_final: bool) -> dict[str, Any]:
    words = final.words
    sentences = [
        {
            "text_seg": s.text.strip(),
            "punc": s.text.strip()[-1:] if s.text.strip()[-1:] in ",.?!;:" else "",
            "start": _ms(s.start),
            "end": _ms(s.end),
            "ts_list": [[_ms(w.start), _ms(w.end)] for w in s.words],
        }
        for s in final.segments
        if s.text.strip()
    ]
    return {
        "mode": {Mode.TWO_PASS: "2pass-offline", Mode.ONLINE: "online", Mode.OFFLINE: "offline"}[
            Mode(mode)
        ],
        "wav_name": wav_name,
        "text": final.text,
        "is_final": is_final,
        # A JSON string, as FunASR's C++ servers send it: the clients on PyPI json-decode it.
        "timestamp": json.dumps([[_ms(w.start), _ms(w.end)] for w in words]),
        "stamp_sents": sentences,
        "utterance": final.utterance,
        "start_time": _ms(final.start),
        "end_time": _ms(final.end),
        "forced": final.forced,
        "language": final.language,
    }


def end_ack(mode: str, wav_name: str) -> dict[str, Any]:
    return {"mode": mode, "wav_name": wav_name, "text": "", "is_final": True, "is_end": True}


def error_message(mode: str, wav_name: str, message: str, code: str) -> dict[str, Any]:
    # `text` stays: older clients index msg["text"] in every message.
    return {
        "mode": mode,
        "wav_name": wav_name,
        "text": "",
        "is_final": True,
        "error": message,
        "code": code,
    }


class DeltaTracker:
    """Turns whole-utterance hypotheses into FunASR's appended deltas without retractions: only
    words two hypotheses in a row agree on, and that continue what was sent, are sent (local
    agreement), so text a client has appended never needs taking back."""

    def __init__(self) -> None:
        self._previous: list[str] = []
        self._sent: list[str] = []
        """The words this utterance's deltas have sent, as sent."""
        self._utterance = -1

    def remainder(self, utterance: int, final_text: str) -> str:
        """What online mode still owes the client for an ended utterance: the final's words
        after those the deltas already sent; the utterance is then closed. Where the final
        reads the sent words differently ("Americans," for "Americans", "ask" for "Ask", a word
        more or less), it continues after its own reading of them: never a repeat, never the
        rest of the utterance lost."""
        words = final_text.split()
        sent = self._sent if utterance == self._utterance else []
        self._utterance, self._previous, self._sent = utterance + 1, [], []
        rest = words[_covered(sent, words) :]
        return (" " if sent and rest else "") + " ".join(rest)

    def delta(self, partial: Partial) -> str:
        if partial.utterance != self._utterance:
            self._utterance, self._previous, self._sent = partial.utterance, [], []
        words = partial.text.split()
        previous, self._previous = self._previous, words
        sent = len(self._sent)
        if [_key(w) for w in words[:sent]] != [_key(w) for w in self._sent]:
            return ""  # this hypothesis reads the sent words otherwise: wait for agreement
        stable = sent
        while stable < min(len(previous), len(words)) and _key(previous[stable]) == _key(
            words[stable]
        ):
            stable += 1
        if stable == sent:
            return ""
        new = words[sent:stable]
        self._sent += new
        return (" " if sent else "") + " ".join(new)


def _key(word: str) -> str:
    """A word as agreement compares it: case and punctuation aside."""
    return "".join(c for c in word.casefold() if c.isalnum()) or word


def _covered(sent: list[str], words: list[str]) -> int:
    """How many of `words` (a final) the client's `sent` words already stand for: up to the
    final's last match of a sent word near its own place (a word or two more or less); with
    no match at all, as many words as were sent."""
    if not sent:
        return 0
    matcher = difflib.SequenceMatcher(
        a=[_key(w) for w in sent], b=[_key(w) for w in words], autojunk=False
    )
    matches = [
        b.b + b.size for b in matcher.get_matching_blocks() if b.size and abs(b.b - b.a) <= 2
    ]
    return matches[-1] if matches else min(len(sent), len(words))
