"""pyannote-audio 4.0.7 (PyPI wheel): its 30 s two-speaker telephone sample with its STM text."""

from __future__ import annotations

from pathlib import Path

from devset.common import Source, Utt

PYA = "pyannote/audio/sample"


def members() -> list[set[str]]:
    return [{f"{PYA}/sample.wav", f"{PYA}/sample.stm"}]


def utts(roots: list[Path]) -> list[Utt]:
    # STM lines: file channel speaker start end words...; the transcript is every segment's
    # words in time order, the speaker the two speakers' labels joined.
    segs = []
    for line in (roots[0] / PYA / "sample.stm").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 6:
            segs.append((float(parts[3]), parts[2], " ".join(parts[5:])))
    segs.sort()
    text = " ".join(t for _, _, t in segs)
    speakers = "+".join(sorted({s for _, s, _ in segs}))
    return [Utt(
        "en_long", "pyannote-sample", roots[0] / PYA / "sample.wav", text, "en",
        "pypi:pyannote-audio==4.0.7", "MIT (pyannote-audio sample)", f"pyannote-{speakers}",
        ["spontaneous", "conversation", "two-speakers", "telephone", "long"],
    )]  # fmt: skip


SOURCE = Source("pyannote", frozenset({"en_long"}), ("pyannote",), members, utts)
