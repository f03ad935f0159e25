"""Non-speech: sound effects and instrumental game music from three Debian packages.

No clip has a spoken word in it (transcripts are empty, language "none"); the freedesktop
theme's audio-channel-* and audio-test-signal files are speech and are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from devset.archives import ARCHIVES
from devset.common import Source, Utt

FDS = "usr/share/sounds/freedesktop/stereo"
CBSU = "usr/share/games/chromium-bsu/wav"
FZB = "usr/share/games/frozen-bubble/snd"
FDS_LIC = "CC-BY-SA-3.0 / CC-BY-3.0 / GPL-2+ (sound-theme-freedesktop, Debian)"
CBSU_LIC = "Expat (chromium-bsu-data, Debian)"
FZB_LIC = "GPL-2.0 (frozen-bubble-data, Debian)"


class Noise(NamedTuple):
    archive: str  # key of `archives.ARCHIVES`
    path: str
    tags: list[str]
    license: str
    cut: tuple[float, float] | None  # (start, end) seconds of a long music file


NOISE = [
    Noise("freedesktop-sounds", f"{FDS}/{n}.oga", ["effect"], FDS_LIC, None)
    for n in ("alarm-clock-elapsed", "bell", "camera-shutter", "complete", "dialog-warning",
              "message-new-instant", "phone-incoming-call", "phone-outgoing-busy", "service-login",
              "trash-empty")
] + [
    Noise("chromium-bsu", f"{CBSU}/{n}.wav", tags, CBSU_LIC, None)
    for n, tags in (("boom", ["effect"]), ("exploBig", ["effect"]), ("exploPop", ["effect"]),
                    ("power", ["effect"]), ("music_game", ["music"]), ("music_menu", ["music"]))
] + [
    Noise("frozen-bubble", f"{FZB}/{n}.ogg", tags, FZB_LIC, cut)
    for n, tags, cut in (("applause", ["effect", "applause"], None), ("snore", ["effect"], None),
                         ("typewriter", ["effect"], None),
                         ("introzik", ["music", "long"], (0.0, 60.0)),
                         ("frozen-mainzik-1p", ["music", "long"], (30.0, 90.0)))
]  # fmt: skip
NOISE_ARCHIVES = ("freedesktop-sounds", "chromium-bsu", "frozen-bubble")


def members() -> list[set[str]]:
    return [{n.path for n in NOISE if n.archive == archive} for archive in NOISE_ARCHIVES]


def utts(roots: list[Path]) -> list[Utt]:
    root_of = dict(zip(NOISE_ARCHIVES, roots, strict=True))
    out = []
    for n in NOISE:
        start, end = n.cut if n.cut else (None, None)
        pin = ARCHIVES[n.archive]
        out.append(Utt(
            "noise", f"{n.archive}-{Path(n.path).stem}", root_of[n.archive] / n.path, "", "none",
            f"debian:{pin.name}={pin.version}", n.license, n.archive, n.tags,
            start=start, end=end,
        ))  # fmt: skip
    return out


SOURCE = Source("noise", frozenset({"noise"}), NOISE_ARCHIVES, members, utts)
