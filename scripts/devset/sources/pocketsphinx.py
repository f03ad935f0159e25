"""pocketsphinx 5.1.1 (PyPI sdist): the clips of its test/data.

LibriVox read speech, spoken card commands with numbers, and two short command/read clips.
"""

from __future__ import annotations

import re
from pathlib import Path

from devset.common import Source, Utt, clean_spaces

PSX = "pocketsphinx-5.1.1/test/data"
SOURCE_ID = "pypi:pocketsphinx==5.1.1"
PSX_LIC = "BSD-2-Clause (pocketsphinx test data)"
LIBRIVOX_LIC = "Public domain (LibriVox recording), via pocketsphinx (BSD-2-Clause)"
PSX_LIBRIVOX = ["0870", "0880", "0890", "0920", "0930"]
PSX_CARDS = ["001", "002", "003", "004", "005"]
LIBRIVOX_STEM = "sense_and_sensibility_01_austen_64kb-{}"


def members() -> list[set[str]]:
    m = {f"{PSX}/librivox/transcription", f"{PSX}/cards/cards.transcription",
         f"{PSX}/goforward.raw", f"{PSX}/forever/input_2_16k.wav"}  # fmt: skip
    m |= {f"{PSX}/librivox/{LIBRIVOX_STEM.format(n)}.wav" for n in PSX_LIBRIVOX}
    m |= {f"{PSX}/cards/{n}.wav" for n in PSX_CARDS}
    return [m]


def sphinx_transcription(path: Path) -> dict[str, str]:
    """Utterance id -> text of a Sphinx transcription file ('<s> words </s> (id)' lines)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^)]+)\)\s*$", line)
        if m:
            out[m.group(2)] = clean_spaces(m.group(1))
    return out


def utts(roots: list[Path]) -> list[Utt]:
    d = roots[0] / PSX
    out = []
    librivox = sphinx_transcription(d / "librivox" / "transcription")
    for n in PSX_LIBRIVOX:
        stem = LIBRIVOX_STEM.format(n)
        out.append(Utt(
            "en", f"psx-librivox-{n}", d / "librivox" / f"{stem}.wav", librivox[stem], "en",
            SOURCE_ID, LIBRIVOX_LIC, "librivox-sense-and-sensibility", ["read", "audiobook"],
        ))  # fmt: skip
    cards = sphinx_transcription(d / "cards" / "cards.transcription")
    for n in PSX_CARDS:
        out.append(Utt(
            "en", f"psx-cards-{n}", d / "cards" / f"{n}.wav", cards[n], "en", SOURCE_ID, PSX_LIC,
            "psx-cards", ["read", "command", "numbers"],
        ))  # fmt: skip
    out.append(Utt(
        "en", "psx-goforward", d / "goforward.raw", "go forward ten meters", "en", SOURCE_ID,
        PSX_LIC, "psx-goforward", ["read", "command"], raw=True,
    ))  # fmt: skip
    out.append(Utt(
        "en", "psx-forever-2", d / "forever" / "input_2_16k.wav",
        "feels like these days go on forever", "en", SOURCE_ID, PSX_LIC, "psx-forever", ["read"],
    ))  # fmt: skip
    return out


SOURCE = Source("pocketsphinx", frozenset({"en"}), ("pocketsphinx",), members, utts)
