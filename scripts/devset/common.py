"""What every step of the recipe shares: the clip record, the recipe version and the log."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Bump when clip boundaries, ids or texts change: it is part of every clip's stamp, so all
# converted audio is rebuilt on the next run.
RECIPE_VERSION = "1"
SAMPLE_RATE = 16000
ALL_SUBSETS = ("en", "en_long", "cs", "nl", "sv", "es", "ja", "es_prompts", "noise")


class Unavailable(Exception):
    """A source cannot be fetched on this machine (e.g. no apt-get); its subsets are skipped."""


def log(msg: str) -> None:
    # Progress goes to stderr: stdout carries only the summary table.
    print(msg, file=sys.stderr, flush=True)


def clean_spaces(s: str) -> str:
    return " ".join(s.split())


@dataclass
class Utt:
    """One clip of the set: where its audio comes from and its manifest fields."""

    subset: str
    id: str
    src: Path  # extracted file to decode
    text: str
    lang: str
    source: str
    license: str
    speaker: str
    tags: list[str] = field(default_factory=list)
    start: float | None = None  # cut [start, end) seconds out of src
    end: float | None = None
    raw: bool = False  # src is headerless little-endian int16, 16 kHz mono
    orig_text: str | None = None  # the source's own annotation when `text` was cleaned

    @property
    def audio(self) -> str:
        """The clip's WAV, relative to the cache directory (as the manifest names it)."""
        return f"audio/{self.subset}/{self.id}.wav"

    def spec_key(self) -> str:
        """What the clip is made from: a converted clip whose stamp differs is rebuilt."""
        return json.dumps([RECIPE_VERSION, str(self.src.name), self.start, self.end, self.raw])


@dataclass(frozen=True)
class Source:
    """One origin of clips: the archives it needs and how its clips come out of them."""

    name: str
    subsets: frozenset[str]
    archives: tuple[str, ...]  # keys of `archives.ARCHIVES`
    members: Callable[[], list[set[str]]]  # the files to extract, one set per archive
    build: Callable[[list[Path]], list[Utt]]  # the clips, from each archive's extract root
