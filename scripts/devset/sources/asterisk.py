"""Debian asterisk-core-sounds-es(-g722) 1.6.1-1: short Spanish telephone prompts.

The audio comes from the G.722 package, the transcripts from the text file of the other one.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from devset.common import Source, Utt, clean_spaces

AST = "usr/share/asterisk/sounds/es_MX_f_Allison"
AST_TEXT = "usr/share/doc/asterisk-core-sounds-es/core-sounds-es.txt.gz"
AST_LIC = "CC-BY-SA-3.0 (Allison Smith / Digium, asterisk-core-sounds-es, Debian)"
# A fixed sample of 120 of the 131 prompts of 1-5 s whose transcript has two or more words and
# neither digits, ellipses nor [tone] marks (seeded shuffle, 2026-11-29): one professional
# Mexican-Spanish voice, 2.8 s on average. The transcripts mostly drop accents ("numero").
AST_SAMPLE = [
    "agent-loggedoff", "agent-loginok", "agent-pass", "conf-enteringno", "conf-errormenu",
    "conf-extended", "conf-getchannel", "conf-getpin", "conf-hasjoin", "conf-hasleft",
    "conf-invalidpin", "conf-kicked", "conf-leaderhasleft", "conf-locked", "conf-lockednow",
    "conf-muted", "conf-noempty", "conf-nonextended", "conf-now-muted", "conf-now-recording",
    "conf-onlyone", "conf-onlyperson", "conf-otherinparty", "conf-placeintoconf",
    "conf-roll-callcomplete", "conf-thereare", "conf-unlockednow", "conf-unmuted",
    "conf-userswilljoin", "conf-userwilljoin", "conf-waitforleader", "confbridge-conf-begin",
    "confbridge-conf-end", "confbridge-invalid", "confbridge-lock-in", "confbridge-locked",
    "confbridge-menu-exit-in", "confbridge-muted", "confbridge-only-one", "confbridge-removed",
    "confbridge-unlocked", "confbridge-unmuted", "demo-echodone", "dictate/playback_mode",
    "dictate/record_mode", "dictate/truncating_audio", "digits/afternoon", "digits/h-13",
    "digits/h-14", "digits/h-15", "digits/h-17", "digits/h-18", "digits/h-19", "digits/pound",
    "dir-last", "dir-multi3", "dir-multi9", "dir-nomatch", "dir-nomore", "dir-pls-enter",
    "followme/no-recording", "followme/pls-hold-while-try", "letters/exclaimation-point",
    "pbx-parkingfailed", "please-try-again", "priv-callpending", "priv-introsaved",
    "priv-recordintro", "privacy-incorrect", "privacy-thankyou", "queue-callswaiting",
    "queue-holdtime", "queue-less-than", "queue-quantity1", "queue-quantity2",
    "queue-reporthold", "queue-thankyou", "queue-thereare", "spy-misdn", "spy-nbs",
    "spy-usbradio", "transfer", "tt-monkeysintro", "tt-somethingwrong", "tt-weasels",
    "vm-changeto", "vm-deleted", "vm-dialout", "vm-duration", "vm-enter-num-to-call",
    "vm-from-extension", "vm-from-phonenumber", "vm-goodbye", "vm-incorrect", "vm-isonphone",
    "vm-isunavail", "vm-login", "vm-marked-urgent", "vm-mismatch", "vm-nomore", "vm-nonumber",
    "vm-num-i-have", "vm-passchanged", "vm-pls-try-again", "vm-rec-name",
    "vm-reenterpassword", "vm-savedto", "vm-savefolder", "vm-star-cancel",
    "vm-tempgreetactive", "vm-tempremoved", "vm-then-pound", "vm-theperson", "vm-tocancel",
    "vm-tocancelmsg", "vm-tooshort", "vm-undeleted", "vm-unknown-caller", "vm-whichbox",
    "vm-youhaveno",
]  # fmt: skip


def members() -> list[set[str]]:
    return [{f"{AST}/{n}.g722" for n in AST_SAMPLE}, {AST_TEXT}]


def prompt_texts(text_file: Path) -> dict[str, str]:
    """Prompt name -> transcript, from 'name: text' lines (';' starts a comment line)."""
    with gzip.open(text_file, "rt", encoding="utf-8") as f:
        lines = [ln.split(":", 1) for ln in f if ":" in ln and not ln.startswith(";")]
    return {k.strip(): clean_spaces(v) for k, v in lines}


def utts(roots: list[Path]) -> list[Utt]:
    audio_root, text_root = roots
    texts = prompt_texts(text_root / AST_TEXT)
    return [
        Utt("es_prompts", "asterisk-es-" + name.replace("/", "-"),
            audio_root / AST / f"{name}.g722", texts[name], "es",
            "debian:asterisk-core-sounds-es-g722=1.6.1-1", AST_LIC, "asterisk-es-allison",
            ["read", "telephone-prompt"])
        for name in AST_SAMPLE
    ]  # fmt: skip


SOURCE = Source(
    "asterisk-es", frozenset({"es_prompts"}), ("asterisk-es", "asterisk-es-text"), members, utts
)
