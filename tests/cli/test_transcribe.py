"""The real `asrserve` command in a subprocess, on real speech encoded as mp3 and m4a."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import srt
import webvtt

from asrserve.engine import decode
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.wer import word_errors
from tests.support.media import encode

ASRSERVE = [sys.executable, "-m", "asrserve.cli"]


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*ASRSERVE, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def media(
    tmp_path_factory: pytest.TempPathFactory, en_long_clips: list[Clip], jfk: Clip
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    two_cities = next(c for c in en_long_clips if c.id == "moonshine-two_cities")
    return {
        "mp3": encode(
            decode(two_cities.audio), 16000, "mp3", root / "two_cities.mp3", rate=44100, channels=2
        ),
        "m4a": encode(decode(jfk.audio), 16000, "m4a", root / "jfk.m4a", rate=48000),
    }


def test_mp3_and_m4a_to_json_srt_vtt_with_progress(
    media: dict[str, Path], tmp_path: Path, en_long_clips: list[Clip], jfk: Clip
) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        "transcribe", media["mp3"], media["m4a"], "-f", "json,verbose_json,srt,vtt", "-o", out
    )
    assert proc.returncode == 0, proc.stderr
    # The progress display: audio seconds done of all, and speed as times real time.
    expected = {
        "two_cities": next(c for c in en_long_clips if c.id == "moonshine-two_cities"),
        "jfk": jfk,
    }
    overall = re.search(r"all 2 files .*? ([\d.]+)/([\d.]+) s +([\d.]+)x", proc.stderr)
    assert overall, proc.stderr
    done, total, speed = map(float, overall.groups())
    assert done == total == pytest.approx(sum(c.duration for c in expected.values()), abs=0.3)
    assert speed > 0
    for stem, clip in expected.items():
        text = json.loads((out / f"{stem}.json").read_text())["text"]
        assert word_errors([clip.text], [text]).rate < 0.05, text
        verbose = json.loads((out / f"{stem}.verbose.json").read_text())
        assert verbose["language"] == "english"
        assert abs(verbose["duration"] - clip.duration) < 0.15  # codec priming adds a little
        assert verbose["words"] and all(
            0 <= w["start"] <= w["end"] <= verbose["duration"] for w in verbose["words"]
        )
        cues = list(srt.parse((out / f"{stem}.srt").read_text()))
        assert len(cues) == len(verbose["segments"])
        assert word_errors([clip.text], [" ".join(c.content for c in cues)]).rate < 0.05
        captions = webvtt.read(str(out / f"{stem}.vtt")).captions
        assert [c.text for c in captions] == [c.content for c in cues]


def test_failed_files_are_reported_and_the_others_still_written(
    media: dict[str, Path], tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "corrupt.mp3").write_bytes(b"\xff\xfb\x90\x00" + os.urandom(4000))
    (inputs / "empty.wav").write_bytes(b"")
    (inputs / "notes.txt").write_text("not audio, just words\n" * 50)
    good = inputs / "jfk.m4a"
    good.write_bytes(media["m4a"].read_bytes())
    out = tmp_path / "out"
    proc = run_cli(
        "transcribe", inputs / "corrupt.mp3", inputs / "empty.wav", inputs / "notes.txt", good,
        tmp_path / "missing.wav", "-f", "text", "-o", out,
    )  # fmt: skip
    assert proc.returncode == 1
    assert (out / "jfk.txt").read_text().strip()
    assert sorted(p.name for p in out.iterdir()) == ["jfk.txt"]
    err = proc.stderr
    assert "corrupt.mp3" in err and "not audio" in err
    assert "empty.wav" in err and "empty" in err.split("empty.wav", 1)[1]
    assert "notes.txt" in err
    assert "missing.wav" in err and "no such file" in err


def test_a_directory_is_searched_for_audio(media: dict[str, Path], tmp_path: Path) -> None:
    nested = tmp_path / "in" / "sub"
    nested.mkdir(parents=True)
    (nested / "a.m4a").write_bytes(media["m4a"].read_bytes())
    (tmp_path / "in" / "b.m4a").write_bytes(media["m4a"].read_bytes())
    (tmp_path / "in" / "readme.md").write_text("skip me")
    proc = run_cli(
        "transcribe", tmp_path / "in", "-f", "srt", "-o", tmp_path / "out", "--jobs", "2"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.srt", "b.srt"]


def test_same_name_inputs_do_not_overwrite_each_other(
    media: dict[str, Path], tmp_path: Path
) -> None:
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "talk.m4a").write_bytes(media["m4a"].read_bytes())
    proc = run_cli(
        "transcribe",
        tmp_path / "x/talk.m4a",
        tmp_path / "y/talk.m4a",
        "-f",
        "text",
        "-o",
        tmp_path / "out",
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["talk-2.txt", "talk.txt"]


def test_stdout_output_and_hotwords_and_bad_options(media: dict[str, Path]) -> None:
    proc = run_cli(
        "transcribe", media["m4a"], "-f", "text", "-o", "-", "-q", "--hotwords", '{"Americans": 5}'
    )
    assert proc.returncode == 0, proc.stderr
    assert "ask not what your country can do for you" in proc.stdout.lower()
    bad = run_cli("transcribe", media["m4a"], "-f", "docx", "-o", "-")
    assert bad.returncode == 2
    assert "docx" in bad.stderr
    bad_languages = run_cli("transcribe", media["m4a"], "--languages", "en,1", "-o", "-")
    assert bad_languages.returncode == 2
    assert "--languages" in bad_languages.stderr
    bad_hotwords = run_cli("transcribe", media["m4a"], "--hotwords", '{"a": ', "-o", "-")
    assert bad_hotwords.returncode == 2
    assert "--hotwords" in bad_hotwords.stderr and "Traceback" not in bad_hotwords.stderr
    expected = run_cli("transcribe", media["m4a"], "--languages", "en,es", "-f", "verbose_json",
                       "-o", "-", "-q")  # fmt: skip
    assert expected.returncode == 0, expected.stderr
    assert json.loads(expected.stdout)["language"] == "english"
    bad_model = run_cli("transcribe", media["m4a"], "--model", "no-such-model", "-o", "-")
    assert bad_model.returncode == 1
    assert "Unknown model" in bad_model.stderr


def test_models_lists_the_catalogue() -> None:
    proc = run_cli("models")
    assert proc.returncode == 0, proc.stderr
    for name in ("whisper-base", "whisper-tiny.en", "pocketsphinx-en", "vosk-ko"):
        assert name in proc.stdout
    assert "ready" in proc.stdout
    assert "multilingual" in proc.stdout
