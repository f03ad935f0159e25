"""The JSONL manifests (one per subset), the removal of stale clips, and the summary table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from devset.common import SAMPLE_RATE, Utt

Row = dict[str, Any]  # one JSON object of a manifest


def manifest_row(u: Utt, frames: int) -> Row:
    """A clip's manifest line; `orig_text` only where the transcript was cleaned."""
    row: Row = {
        "id": u.id, "audio": u.audio, "text": u.text, "lang": u.lang,
        "duration": round(frames / SAMPLE_RATE, 3), "source": u.source, "license": u.license,
        "speaker": u.speaker, "tags": u.tags,
    }  # fmt: skip
    if u.orig_text is not None:
        row["orig_text"] = u.orig_text
    return row


def write_manifests(
    cache: Path, subsets: list[str], utts: list[Utt], frames: dict[str, int]
) -> dict[str, list[Row]]:
    """Write cache/<subset>.jsonl for each of `subsets` (sorted by id); return their rows.

    Every listed subset gets its manifest, empty if no clip of it was converted.
    """
    rows_by_subset: dict[str, list[Row]] = {s: [] for s in subsets}
    for u in sorted(utts, key=lambda u: u.id):
        rows_by_subset.setdefault(u.subset, []).append(manifest_row(u, frames[u.id]))
    for s, rows in rows_by_subset.items():
        _write_jsonl(cache / f"{s}.jsonl", rows)
    return rows_by_subset


def _write_jsonl(path: Path, rows: list[Row]) -> None:
    # Renamed into place: a reader never sees a half-written manifest.
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def prune_audio(cache: Path, subsets: list[str], utts: list[Utt]) -> None:
    """Delete the WAVs (and stamps) of clips no longer in a manifest of `subsets`."""
    keep = {cache / u.audio for u in utts}
    for s in subsets:
        for f in (cache / "audio" / s).glob("*.wav"):
            if f not in keep:
                f.unlink()
                f.with_name(f".{f.name}.src").unlink(missing_ok=True)


def print_summary(
    cache: Path,
    wanted: list[str],
    skipped: dict[str, str],
    rows_by_subset: dict[str, list[Row]],
    seconds: float,
) -> None:
    """Clips, speakers and durations of each subset, on stdout."""
    print(
        f"\n{'subset':<8} {'utts':>5} {'spkrs':>5} {'minutes':>8} {'min s':>6} {'mean s':>6} "
        f"{'max s':>6}  manifest"
    )
    total_n, total_s = 0, 0.0
    for s in wanted:
        if s in skipped:
            print(f"{s:<8} SKIPPED: {skipped[s]}")
            continue
        rows = rows_by_subset.get(s, [])
        d = [r["duration"] for r in rows] or [0.0]
        total_n += len(rows)
        total_s += sum(d)
        speakers = len({r["speaker"] for r in rows})
        print(
            f"{s:<8} {len(rows):>5} {speakers:>5} {sum(d) / 60:>8.2f} {min(d):>6.1f} "
            f"{np.mean(d):>6.1f} {max(d):>6.1f}  {cache / (s + '.jsonl')}"
        )
    print(f"{'total':<8} {total_n:>5} {'':>5} {total_s / 60:>8.2f}   ({seconds:.0f}s)")
