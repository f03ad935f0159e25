"""Debian fillets-ng-data(-cs/-nl) 1.0.1-1.1: acted Czech and Dutch game dialogue.

The recordings come from the language packages; their texts from the base package's Lua
dialogue scripts (one per level and language).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from devset.common import Source, Utt, clean_spaces

FIL = "usr/share/games/fillets-ng"
FIL_LIC = "GPL-2.0 (fillets-ng-data, Debian)"
LANGS = ("cs", "nl")
# A fixed sample of 60 (level, dialog id), the same lines in both languages: the first 60 in
# sha1("level/id") order among lines recorded in both languages that last 1.5-12 s and have >= 3
# words, skipping 4 whose Dutch recording could not be confirmed to say the written line
# (bathroom/br-m-vsim1, labyrinth/bl-m-zvlastni0, magnet/pap-v-ha, pearls/jed-m-perly1).
FILLETS_SAMPLE = [
    ("briefcase", "help15"), ("viking2", "dr1-v-olaf"), ("hanoi", "v-kopie"),
    ("keys", "rand-0-5-4"), ("floppy", "disk-v-mas"), ("map", "map-m-uz"),
    ("submarine", "zr-v-halo"), ("library", "vrak-m-cteni0"), ("pearls", "jed-v-uzivat1"),
    ("stairs", "sch-m-moc2"), ("barrel", "bar-m-noha"), ("imprisoned", "ncp-m-koraly"),
    ("grail", "gr-m-tuseni"), ("library", "vrak-v-snek"), ("gems", "zav-m-pohnout"),
    ("windoze", "win-v-citim"), ("library", "vrak-m-knihy4"), ("rush", "m-vysunout"),
    ("magnet", "pap-m-jejedno"), ("emulator", "zx-v-manicminer"), ("wreck", "pot-m-zatuch"),
    ("linux", "m-vykaslat"), ("propulsion", "poh-v-zarizeni"), ("gods", "lod-m-co"),
    ("library", "vrak-v-nevejdu1"), ("chest", "tru-m-truhla1"), ("noground", "nog-v-zvlastni"),
    ("cave", "jes-v-uzke"), ("tetris", "tet-v-lepsi"), ("hardware", "pz-m-spoje3"),
    ("creatures", "kor-m-dusi"), ("pearls", "jed-v-poter"), ("experiments", "bank-m-labolator2"),
    ("tank", "sv-v-ucpat"), ("kitchen", "kuch-m-objev1"), ("experiments", "bank-v-nahazet"),
    ("columns", "sl-v-barbarka"), ("fdto", "proc-v"), ("cave", "jes-v-nechut1"),
    ("pearls", "jed-m-perlorodka2"), ("barrel", "bar-m-rybka"), ("start", "1st-v-nedostanu"),
    ("windoze", "win-v-real"), ("city", "vit-m-nezkusime"), ("city", "vit-m-hlava"),
    ("floppy", "disk-m-ukol"), ("submarine", "zr-m-tojeon"), ("elevator2", "zd2-m-lebka"),
    ("pearls", "jed-v-poslani0"), ("reef", "uts-m-zivocich"), ("briefcase", "help14"),
    ("experiments", "bank-m-nerus"), ("aztec", "bot-v-vsak0"), ("barrel", "bar-m-rada"),
    ("engine", "mot-m-info"), ("hardware", "pz-v-hej"), ("cave", "jes-v-potvora1"),
    ("aztec", "bot-v-vsak1"), ("barrel", "bar-v-krab"), ("alibaba", "kni-m-cetky"),
]  # fmt: skip
FILLETS = {lang: FILLETS_SAMPLE for lang in LANGS}
# dialogId("id", "font" | nil, "English line") dialogStr("translation") in dialogs_<lang>.lua
_LUA_STR = r'"((?:[^"\\]|\\.)*)"'
_LUA_DIALOG = re.compile(
    r"dialogId\(\s*" + _LUA_STR + r"\s*,\s*(?:" + _LUA_STR + r"|nil)\s*,\s*"
    + _LUA_STR + r"\s*\)\s*dialogStr\(\s*" + _LUA_STR + r"\s*\)",
    re.S,
)  # fmt: skip
# whose voice a dialog id's role letter is (m: the small fish, v: the big one)
SPEAKERS = {"m": "small-fish-female", "v": "big-fish-male"}


def members(lang: str) -> list[set[str]]:
    # The base package's texts for every language, so that both sources ask for the same
    # members and share one extraction of it.
    base = {f"{FIL}/script/{lvl}/dialogs_{lg}.lua" for lg in FILLETS for lvl, _ in FILLETS[lg]}
    snd = {f"{FIL}/sound/{lvl}/{lang}/{did}.ogg" for lvl, did in FILLETS[lang]}
    return [base, snd]


def _lua_unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": " ", "t": " "}.get(m.group(1), m.group(1)), s)


def _dialogs(script: Path) -> dict[str, str]:
    """Dialog id -> text of one level's Lua dialogue script."""
    txt = script.read_text(encoding="utf-8")
    return {m.group(1): _lua_unescape(m.group(4)) for m in _LUA_DIALOG.finditer(txt)}


def _speaker(did: str) -> str:
    parts = did.split("-")
    role = "m" if "m" in parts else "v" if "v" in parts else ""
    return SPEAKERS.get(role, "unknown")


def utts(lang: str, roots: list[Path]) -> list[Utt]:
    base_root, snd_root = roots
    dialogs: dict[str, dict[str, str]] = {}
    out = []
    for lvl, did in FILLETS[lang]:
        if lvl not in dialogs:
            dialogs[lvl] = _dialogs(base_root / FIL / "script" / lvl / f"dialogs_{lang}.lua")
        ogg = snd_root / FIL / "sound" / lvl / lang / f"{did}.ogg"
        out.append(Utt(
            lang, f"fillets-{lang}-{lvl}-{did}", ogg,
            clean_spaces(dialogs[lvl][did]), lang, f"debian:fillets-ng-data-{lang}=1.0.1-1.1",
            FIL_LIC, f"fillets-{lang}-{_speaker(did)}", ["acted", "game-dialogue"],
        ))  # fmt: skip
    return out


SOURCES = [
    Source(f"fillets-{lang}", frozenset({lang}), ("fillets", f"fillets-{lang}"),
           partial(members, lang), partial(utts, lang))
    for lang in LANGS
]  # fmt: skip
