"""moonshine-voice 0.1.5 (PyPI wheel): its two read-speech assets."""

from __future__ import annotations

from pathlib import Path

from devset.common import Source, Utt

MSH = "moonshine_voice/assets"
SOURCE_ID = "pypi:moonshine-voice==0.1.5"
MSH_LIC = "MIT (moonshine-voice assets)"
TWO_CITIES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness, it was the spring of hope, it was the winter "
    "of despair, we had everything before us, we had nothing before us, we were all going direct "
    "to Heaven, we were all going direct the other way - in short, the period was so far like the "
    "present period, that some of its noisiest authorities insisted on its being received, for "
    "good or for evil, in the superlative degree of comparison only."
)
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def members() -> list[set[str]]:
    return [{f"{MSH}/two_cities.wav", f"{MSH}/beckett.wav"}]


def utts(roots: list[Path]) -> list[Utt]:
    assets = roots[0] / MSH
    return [
        Utt("en_long", "moonshine-two_cities", assets / "two_cities.wav", TWO_CITIES, "en",
            SOURCE_ID, MSH_LIC, "moonshine-two-cities", ["read", "long"]),
        Utt("en", "moonshine-beckett", assets / "beckett.wav", BECKETT, "en", SOURCE_ID, MSH_LIC,
            "moonshine-beckett", ["read"]),
    ]  # fmt: skip


SOURCE = Source("moonshine", frozenset({"en", "en_long"}), ("moonshine",), members, utts)
