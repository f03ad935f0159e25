"""The development speech set of `scripts/fetch_dev_set.py`: real recordings with transcripts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def dev_set_dir() -> Path:
    """Where `make test-data` caches the set: $DEV_SET_CACHE, else ~/.cache/asr-dev-set."""
    env = os.environ.get("DEV_SET_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "asr-dev-set"


@dataclass(frozen=True, slots=True)
class Clip:
    id: str
    audio: Path
    text: str
    lang: str
    duration: float
    tags: tuple[str, ...]
    speaker: str


class DevSetMissingError(RuntimeError):
    pass


def load_subset(subset: str, root: Path | None = None) -> list[Clip]:
    root = root or dev_set_dir()
    manifest = root / f"{subset}.jsonl"
    if not manifest.is_file():
        raise DevSetMissingError(
            f"{manifest} is missing: run `make test-data` (scripts/fetch_dev_set.py) first."
        )
    clips = []
    with manifest.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            clips.append(
                Clip(
                    id=row["id"],
                    audio=manifest.parent / row["audio"],
                    text=row["text"],
                    lang=row["lang"],
                    duration=float(row["duration"]),
                    tags=tuple(row.get("tags", ())),
                    speaker=row.get("speaker", ""),
                )
            )
    return clips


# Conditions the set's recipe (scripts/devset/) tags as deliberately hard (non-words, whisper,
# falsetto...).
HARD_TAGS = frozenset(
    {"scripted", "pronunciation", "nonword", "register", "whisper", "laughter", "cutoff", "slow"}
)


def clean_read(clips: list[Clip]) -> list[Clip]:
    """Clips of ordinary speech: none of the deliberately hard conditions."""
    return [c for c in clips if not HARD_TAGS.intersection(c.tags)]
