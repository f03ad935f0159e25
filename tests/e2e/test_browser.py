"""The demo page in a real browser: headless Debian Chromium driven by Playwright.

The microphone is Chromium's fake capture device playing a real speech clip (JFK, 11 s) from a
48 kHz wav, so the page's whole path runs as it does for a person: getUserMedia, the AudioWorklet
downsampling to 16 kHz s16le, 60 ms frames over the FunASR WebSocket, partials and finals drawn
into the page. The upload test goes through the page's form, progress bars and SRT link.

Chromium comes from Debian (`scripts/install_browser.sh`), never from `playwright install`.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import srt
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from asrserve.engine import decode
from asrserve.engine.audio import float32_to_pcm16, resample
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.processes import ServerProcess
from asrserve.evaluation.wer import word_errors

CHROMIUM = Path("/usr/bin/chromium")
CAPTURE_RATE = 48000
LEAD_S, TAIL_S = 1.0, 2.0
"""Silence around the speech in the fake microphone's file: the endpointer needs the tail."""

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


@pytest.fixture(scope="module")
def microphone_wav(jfk: Clip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JFK clip as the fake microphone hears it: 48 kHz mono 16-bit, padded with silence."""
    speech = resample(decode(jfk.audio), 16000, CAPTURE_RATE)
    audio = np.concatenate(
        [
            np.zeros(int(LEAD_S * CAPTURE_RATE), np.float32),
            speech,
            np.zeros(int(TAIL_S * CAPTURE_RATE), np.float32),
        ]
    )
    path = tmp_path_factory.mktemp("browser") / "jfk-48k.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(CAPTURE_RATE)
        wav.writeframes(float32_to_pcm16(audio))
    return path


@pytest.fixture(scope="module")
def browser(microphone_wav: Path) -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_browser.sh (Debian's chromium)")
    # %noloop: Chromium would otherwise replay the file, and the speech, forever.
    capture = f"--use-file-for-fake-audio-capture={microphone_wav}%noloop"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*BROWSER_ARGS, capture]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url)
    context.grant_permissions(["microphone"], origin=server.url)
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.goto("/demo")
    yield page
    context.close()
    assert not problems, f"the page reported errors: {problems}"


def test_demo_page_is_served_self_contained(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/demo", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    for element in ('id="start"', 'id="stop"', 'id="partial"', 'id="final"', 'id="status"'):
        assert element in response.text
    assert "http://" not in response.text and "https://" not in response.text
    assert "/demo" not in httpx.get(f"{server.url}/openapi.json", timeout=30).text


@dataclass
class Session:
    """What one microphone session left in the page."""

    events: list[dict[str, Any]]
    """Every server message, in order (window.asrEvents)."""
    partials_shown: list[dict[str, Any]]
    """Each change of #partial: its text, and whether #final had text yet."""
    transcript: str
    """#final at the end."""


def speak(page: Page, mode: str, seconds: float) -> Session:
    """Start the microphone in `mode`, wait for a result and for `seconds` of audio to have
    gone out, stop, and wait for the server's end acknowledgement."""
    page.select_option("#mode", mode)
    page.evaluate(
        """() => {
            window.partialsShown = [];
            const partial = document.getElementById("partial");
            const final = document.getElementById("final");
            new MutationObserver(() => {
                const text = partial.textContent.trim();
                if (text) window.partialsShown.push({text, finalShown: final.textContent !== ""});
            }).observe(partial, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.click("#start")
    page.wait_for_function("() => window.asrStats.state === 'recording'", timeout=30_000)
    assert page.is_enabled("#stop") and page.is_disabled("#start")
    if mode != "offline":  # offline mode answers only after the end
        page.wait_for_function(
            "() => document.getElementById('final').textContent.trim() !== ''", timeout=90_000
        )
    page.wait_for_function(
        f"() => window.asrStats.samplesSent >= {seconds * 16000:.0f}", timeout=90_000
    )
    page.click("#stop")
    page.wait_for_function(
        "() => ['done', 'error'].includes(window.asrStats.state)", timeout=90_000
    )
    stats = page.evaluate("window.asrStats")
    events = page.evaluate("window.asrEvents")
    assert stats["state"] == "done", f"{page.inner_text('#status')}; last messages: {events[-3:]}"
    # 960-sample frames (60 ms) at 16 kHz; only the flushed last one may be shorter.
    assert stats["framesSent"] - 1 <= stats["samplesSent"] / 960 <= stats["framesSent"]
    assert not [e for e in events if e.get("error")], events
    assert events[-1]["is_end"] is True and events[-1]["is_final"] is True
    assert page.inner_text("#partial") == "", "the live line is empty once all is final"
    assert page.is_enabled("#start") and page.is_disabled("#stop")
    return Session(events[:-1], page.evaluate("window.partialsShown"), page.inner_text("#final"))


def said(session: Session) -> str:
    """The server's messages, one line each: what a failed assertion needs to be read."""
    lines = [
        f"{e['mode']} u{e.get('utterance')} final={e['is_final']}: "
        f"{e.get('utterance_text', e['text'])!r}"
        for e in session.events
    ]
    return "\n".join([*lines, f"transcript: {session.transcript!r}"])


def test_microphone_2pass_shows_live_partials_then_accurate_finals(page: Page, jfk: Clip) -> None:
    # Stop once the whole file (speech and the silence after it) has gone out.
    session = speak(page, "2pass", LEAD_S + jfk.duration + TAIL_S)
    events = session.events
    finals = [i for i, e in enumerate(events) if e["mode"] == "2pass-offline"]
    partials = [i for i, e in enumerate(events) if e["mode"] == "2pass-online"]
    assert finals and partials and len(finals) + len(partials) == len(events), events
    early = [events[i] for i in partials if i < finals[0]]
    assert any(e.get("utterance_text") or e["text"] for e in early), "no partial before a final"
    assert any(not s["finalShown"] for s in session.partials_shown), session.partials_shown
    # Finals replace the live text: the transcript is exactly the finals' text.
    finals_text = [events[i]["text"].strip() for i in finals]
    assert session.transcript == " ".join(t for t in finals_text if t)
    wer = word_errors([jfk.text], [session.transcript]).rate
    print(f"browser 2pass: WER {wer:.3f}, {len(partials)} partials, {len(finals)} finals")
    assert wer < 0.2, said(session)


def test_microphone_online_appends_partials_into_the_transcript(page: Page, jfk: Clip) -> None:
    session = speak(page, "online", LEAD_S + jfk.duration + TAIL_S)
    assert {e["mode"] for e in session.events} == {"online"}
    assert any(not s["finalShown"] for s in session.partials_shown), session.partials_shown
    # Each utterance's end-of-utterance result (the partial model's, decoded whole) replaces
    # what its partials appended: the transcript is exactly those results, in order.
    finals = [e["utterance_text"].strip() for e in session.events if "timestamp" in e]
    assert finals and session.transcript == " ".join(t for t in finals if t), said(session)
    wer = word_errors([jfk.text], [session.transcript]).rate
    print(f"browser online: WER {wer:.3f}, {len(session.events)} messages")
    assert wer < 0.2, said(session)


def test_microphone_offline_gives_one_result_at_the_end(page: Page, jfk: Clip) -> None:
    session = speak(page, "offline", LEAD_S + jfk.duration + TAIL_S)
    assert [e["mode"] for e in session.events] == ["offline"], session.events
    assert session.events[0]["is_final"] is True
    assert session.partials_shown == []
    assert session.transcript == session.events[0]["text"].strip()
    wer = word_errors([jfk.text], [session.transcript]).rate
    print(f"browser offline: WER {wer:.3f}")
    assert wer < 0.2, session.transcript


def test_upload_shows_progress_and_offers_subtitles(
    page: Page, server: ServerProcess, jfk: Clip
) -> None:
    page.set_input_files("#file", str(jfk.audio))
    page.click("#upload")
    page.wait_for_selector("#srt-link:not([hidden])", timeout=180_000)
    assert page.evaluate("document.getElementById('upload-progress').value") == 1
    assert page.evaluate("document.getElementById('job-progress').value") == 1
    assert page.inner_text("#job-status") == "Done."

    href = page.get_attribute("#srt-link", "href")
    assert href is not None and href.startswith("/v1/jobs/") and href.endswith("?format=srt")
    response = httpx.get(f"{server.url}{href}", timeout=30)
    assert response.status_code == 200
    cues = list(srt.parse(response.text))
    assert cues
    assert word_errors([jfk.text], [" ".join(c.content for c in cues)]).rate < 0.1
    assert word_errors([jfk.text], [page.inner_text("#file-text")]).rate < 0.1
