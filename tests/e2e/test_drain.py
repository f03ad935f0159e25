"""SIGTERM drains live streams, against a real server process (issue #10, item 5).

What clients see, in order: `/ready` answers 503 at once while `/health` stays 200 and the server
still listens; a new stream is refused (`server_draining`, close 1013); each open stream goes on
until the utterance being spoken ends (a pause, the client going quiet, or the drain's cut-off),
gets that utterance's final marked `is_final`, then a 1012 close; the process exits 0 within
`shutdown_grace_s`. Nothing here depends on how fast the machine is: every wait is generous, and
each stream's speech is chosen so that the VAD, not the clock, decides where it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from asrserve.engine import decode
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.processes import ServerProcess, start_server
from asrserve.evaluation.wer import word_errors
from tests.support.funasr import FRAME, config, pcm_of, ws_url

SECOND = 32000  # bytes of s16le at 16 kHz
WAIT_S = 120.0  # for anything the server does: far more than it needs


def frames(audio: bytes) -> list[bytes]:
    return [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]


def clip(clips: list[Clip], clip_id: str) -> Clip:
    return next(c for c in clips if c.id == clip_id)


def best_prefix(reference: str, hypothesis: str) -> tuple[float, int]:
    """(WER, words) of the hypothesis against the reference's best-matching first words: the
    text of audio cut where the VAD or the drain cut it."""
    words = reference.split()
    return min(
        (word_errors([" ".join(words[:n])], [hypothesis]).rate, n) for n in range(1, len(words) + 1)
    )


@dataclass
class Stream:
    """One open 2pass stream and every message the server sent on it."""

    ws: ClientConnection
    messages: list[dict[str, Any]] = field(default_factory=list)
    closed_at: float | None = None
    sent: int = 0
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, name: str) -> Stream:
        ws = await websockets.connect(url, subprotocols=[Subprotocol("binary")], max_size=None)
        stream = cls(ws)
        stream._reader = asyncio.create_task(stream._read())
        await ws.send(config(wav_name=name))
        return stream

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.messages.append(json.loads(raw))

        except ConnectionClosed:
            pass
        self.closed_at = time.monotonic()

    async def send(self, audio: list[bytes], pace: float = 0.0) -> bool:
        """Sends frames until the server closes; False once it has."""
        for frame in audio:
            try:
                await self.ws.send(frame)
            except ConnectionClosed:
                return False
            self.sent += len(frame)
            await asyncio.sleep(pace)
        return True

    async def closed(self) -> tuple[int | None, str]:
        assert self._reader is not None
        await asyncio.wait_for(self._reader, WAIT_S)
        return self.ws.close_code, self.ws.close_reason or ""

    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["mode"] == "2pass-offline"]

    def text(self) -> str:
        return " ".join(m["text"] for m in self.finals())


async def refused(url: str) -> tuple[dict[str, Any], int | None, str]:
    async with websockets.connect(url, subprotocols=[Subprotocol("binary")]) as ws:
        with contextlib.suppress(ConnectionClosed):  # the refusal may come first
            await ws.send(config(wav_name="latecomer"))
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT_S)
        return message, ws.close_code, ws.close_reason or ""


def local_address(response: httpx.Response) -> Any:
    return response.extensions["network_stream"].get_extra_info("client_addr")


@pytest.fixture
def stopped_after() -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:  # a failed test must not leave a server behind
        if server.proc.poll() is None:
            server.stop(signal.SIGKILL)


GRACE_S = 30.0


def test_sigterm_lets_open_streams_finish_their_utterance_and_refuses_new_ones(
    tmp_path: Path, en_clips: list[Clip], stopped_after: list[ServerProcess]
) -> None:
    server = start_server(tmp_path, name="drain", shutdown_grace_s=str(GRACE_S))
    stopped_after.append(server)
    # One utterance each, no pause inside (7 s and 5 s of read speech): at the SIGTERM both
    # are being spoken, whatever the machine's speed.
    whole = clip(en_clips, "psx-librivox-0870")
    halted = clip(en_clips, "psx-librivox-0890")
    talking_audio = frames(pcm_of(whole, tail=1.5))
    halted_audio = frames(pcm_of(halted, tail=0.0))
    before = int(3.5 * SECOND / FRAME)  # 3 s into each utterance
    url = ws_url(server)

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        # Limits of 1 connection: every request below goes over the one kept-alive connection
        # opened before the SIGTERM.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
            assert (await http.get("/ready")).status_code == 200
            # A first stream loads the partial model, so these start at once.
            warm_up = await Stream.open(url, "warm-up")
            await warm_up.send(frames(pcm_of(clip(en_clips, "psx-cards-001"), tail=1.0)))
            await warm_up.ws.send(json.dumps({"is_speaking": False, "is_end": True}))
            assert (await warm_up.closed())[0] == 1000 and warm_up.finals()
            talking = await Stream.open(url, "talking")
            halting = await Stream.open(url, "halting")
            silent = await Stream.open(url, "silent")
            await asyncio.gather(  # as live microphones do
                talking.send(talking_audio[:before], pace=0.06),
                halting.send(halted_audio[:before], pace=0.06),
                silent.send(frames(bytes(3 * SECOND)), pace=0.06),
            )
            seen["finals_before"] = len(talking.finals()) + len(halting.finals())

            # The person on `talking` goes on with the sentence; `halting`'s client sends
            # nothing more. Slowly until the checks below are done, so the sentence is still
            # being spoken while they run, then at about real time.
            checked = asyncio.Event()

            async def keep_talking() -> None:
                for frame in talking_audio[before:]:
                    if not await talking.send([frame], 0.05 if checked.is_set() else 0.25):
                        return

            talker = asyncio.create_task(keep_talking())
            # uvicorn closes connections idle for 5 s: this one is fresh at the SIGTERM.
            held = local_address(await http.get("/health"))
            sigterm_at = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)

            for _ in range(int(WAIT_S / 0.02)):  # the signal is asynchronous: poll
                if (ready := await http.get("/ready")).status_code != 200:
                    break
                await asyncio.sleep(0.02)
            seen["ready"] = (ready.status_code, ready.json())
            seen["same_connection"] = local_address(ready) == held
            seen["health"] = (await http.get("/health")).status_code
            seen["refusal"] = await refused(url)
            seen["still_open"] = talking.closed_at is None
            checked.set()

            seen["closes"] = {
                "talking": await talking.closed(),
                "halting": await halting.closed(),
                "silent": await silent.closed(),
            }
            await talker
            seen["streams"] = {"talking": talking, "halting": halting, "silent": silent}
            seen["close_after_s"] = max(
                s.closed_at - sigterm_at for s in (talking, halting, silent) if s.closed_at
            )
        return seen

    seen = asyncio.run(scenario())
    assert seen["finals_before"] == 0, "both utterances were still being spoken at the SIGTERM"

    status, body = seen["ready"]
    assert status == 503 and body["draining"] is True, body
    assert seen["same_connection"], "seen on the connection held since before the SIGTERM"
    assert any("draining" in reason for reason in body["reasons"]), body
    assert seen["health"] == 200, "alive until it exits"
    message, code, reason = seen["refusal"]
    assert message["code"] == "server_draining" and "shutting down" in message["error"], message
    assert code == 1013 and "shutting down" in reason
    assert seen["still_open"], "the checks ran while the open stream was still being spoken"

    streams: dict[str, Stream] = seen["streams"]
    for name, (code, reason) in seen["closes"].items():
        assert code == 1012 and "restart" in reason, (name, code, reason)
        assert not [m for m in streams[name].messages if "error" in m], name

    # The sentence being spoken at the SIGTERM is not lost: its final has all of it.
    talking = streams["talking"]
    assert talking.finals() and talking.finals()[-1]["is_final"] is True, talking.messages
    assert word_errors([whole.text], [talking.text()]).rate < 0.2, talking.text()

    # The client that went quiet gets the final of what it had said.
    halting = streams["halting"]
    assert halting.finals() and halting.finals()[-1]["is_final"] is True, halting.messages
    rate, words = best_prefix(halted.text, halting.text())
    assert rate < 0.25 and words >= 5, (halting.text(), rate, words)
    assert words < len(halted.text.split()), "only what was sent"

    # No speech in progress: closed with nothing to send.
    assert streams["silent"].finals() == []

    assert seen["close_after_s"] < GRACE_S
    assert server.proc.wait(GRACE_S + 60) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)


def test_an_utterance_still_spoken_at_the_cut_off_is_cut_there_and_its_final_sent(
    tmp_path: Path, en_clips: list[Clip], stopped_after: list[ServerProcess]
) -> None:
    # 20 s of grace: utterances are cut after 10 s, leaving the other 10 s for the final.
    grace_s = 20.0
    server = start_server(tmp_path, name="cutoff", shutdown_grace_s=str(grace_s))
    stopped_after.append(server)
    monologue = clip(en_clips, "mfa-cold_corpus3")  # 22 s of talk without a pause
    audio = frames(pcm_of(monologue, lead=0.0, tail=0.0))
    before = int(3.0 * SECOND / FRAME)  # 2 s into the talk

    async def scenario() -> tuple[Stream, float]:
        stream = await Stream.open(ws_url(server), "monologue")
        await stream.send(audio[:before])
        # Admitted before the SIGTERM: a stream the server had not yet taken in (90 ms after
        # its handshake, under a CPU hog) is refused as new, with server_draining and 1013.
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for _ in range(int(WAIT_S / 0.05)):
                if (await http.get("/ready")).json().get("streams_active"):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the stream was never admitted")
        sigterm_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # Never faster than real time: the speech outlasts the cut-off, however slow the client.
        await stream.send(audio[before:], pace=0.06)
        await stream.closed()
        assert stream.closed_at is not None
        return stream, stream.closed_at - sigterm_at

    stream, close_after_s = asyncio.run(scenario())
    assert stream.ws.close_code == 1012, (stream.ws.close_code, stream.messages[-3:])
    assert stream.sent < len(b"".join(audio)), "cut while the person was still talking"
    assert stream.finals() and stream.finals()[-1]["is_final"] is True, stream.messages[-3:]
    rate, words = best_prefix(monologue.text, stream.text())
    assert rate < 0.35 and words >= 10, (stream.text(), rate, words)
    assert close_after_s < grace_s
    assert server.proc.wait(grace_s + 60) == 0


def test_a_request_still_decoding_when_the_grace_runs_out_gets_a_clear_503(
    tmp_path: Path, en_long_clips: list[Clip], stopped_after: list[ServerProcess]
) -> None:
    # Nearly 4 minutes of speech and a 1 s grace on the CPU: no CPU decodes it before the cut.
    recording = tmp_path / "long.wav"
    audio = np.concatenate([decode(c.audio) for c in en_long_clips])
    with wave.open(str(recording), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    server = start_server(tmp_path, name="grace", shutdown_grace_s="1", device="cpu")
    stopped_after.append(server)
    client = openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=WAIT_S
    )
    outcome: dict[str, Any] = {}

    def request() -> None:
        try:
            with recording.open("rb") as fh:
                outcome["text"] = client.audio.transcriptions.create(model="whisper-1", file=fh)
        except openai.APIStatusError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=request)
    caller.start()
    deadline = time.monotonic() + WAIT_S
    while httpx.get(f"{server.url}/ready", timeout=5).json().get("requests_active", 0) < 1:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGTERM)
    caller.join(WAIT_S)
    error = outcome.get("error")
    assert isinstance(error, openai.APIStatusError), outcome
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "1"
    assert error.response.json()["error"]["code"] == "server_shutting_down"
    assert server.proc.wait(WAIT_S) == 0
