"""WhisperLive as the streaming benchmark's peer: the same streams, the same measurements.

WhisperLive (PyPI `whisper-live`, faster-whisper backend) runs in its own virtual environment,
built here on first use with only what its server imports, never a dependency of asrserve. It
serves the same `whisper-base` model directory asrserve uses, on CPU int8, one model shared by
every client (`single_model`, what its `run_server.py` does for a custom model).

Its protocol: a JSON options message, `SERVER_READY`, audio frames (here s16le PCM, the same
60 ms frames as the asrserve streams), `END_OF_AUDIO`. It sends the last few segments of the
stream after every re-decode; a segment marked `completed` no longer changes (the final), the
last one, not completed, is the live text (the partial). A segment completes once speech after
it has been decoded, or after its text repeated `same_output_threshold` times: the last one of
a stream never completes before `END_OF_AUDIO` closes the stream, so the stream's last clip
takes its final from the live text the client holds at close, timed at that text's first
arrival. It decodes only until `END_OF_AUDIO`, so each stream
waits after its last frame until what it sends has stopped changing (`QUIET_S`).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import websockets
from websockets.exceptions import ConnectionClosed, WebSocketException

from asrserve.evaluation.processes import free_port
from bench.streaming import LANGUAGE, ClipOutcome, StreamProtocol, StreamRun

NAME = "WhisperLive"
PACKAGE = "whisper-live==0.10.0"
# What its server and faster-whisper backend import (not its TensorRT, OpenVINO, diarization
# and translation extras). torch is imported for the device check alone, but imported.
SERVER_REQUIREMENTS = (
    "faster-whisper==1.2.0",
    "ctranslate2==4.8.5",
    "torch==2.14.1",
    "requests==2.34.2",
    "websockets==17.4",
    "numpy==2.4.6",
    "fastapi==0.165.0",
    "uvicorn==0.55.0",
)
DEFAULT_VENV = Path.home() / ".cache" / "asrserve" / "bench" / "whisperlive-venv"
SERVE = """
import sys
from whisper_live.server import TranscriptionServer
port, model, clients = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
TranscriptionServer().run("127.0.0.1", port, backend="faster_whisper",
    faster_whisper_custom_model_path=model, single_model=True, max_clients=clients,
    max_connection_time=3600)
"""
END_OF_AUDIO = b"END_OF_AUDIO"
QUIET_S = 4.0


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The peer's Python, its environment built first if missing or built from other pins."""
    python = venv / "bin" / "python"
    marker = venv / "asrserve-bench-pins.txt"
    pins = "\n".join((PACKAGE, *SERVER_REQUIREMENTS)) + "\n"
    if python.exists() and marker.is_file() and marker.read_text() == pins:
        return python
    print(f"building {NAME}'s environment in {venv} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-warn-conflicts",
    ]
    # Its own metadata asks for every backend's libraries (OpenVINO, TensorRT, openai-whisper);
    # the server needs none of them for faster-whisper.
    subprocess.run([*pip, "--no-deps", PACKAGE], check=True)
    subprocess.run([*pip, *SERVER_REQUIREMENTS], check=True)
    marker.write_text(pins)
    return python


@dataclass
class PeerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)


def start(python: Path, model_dir: Path, max_clients: int, scratch: Path) -> PeerProcess:
    """WhisperLive on loopback, ready once its port accepts connections."""
    port = free_port()
    home = scratch / "whisperlive-home"  # what it caches goes here, not in the user's home
    home.mkdir(parents=True, exist_ok=True)
    log_path = scratch / "whisperlive.log"
    env = {**os.environ, "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(python), "-c", SERVE, str(port), str(model_dir), str(max_clients)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{NAME} exited with {proc.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return PeerProcess(proc, f"ws://127.0.0.1:{port}", log_path)
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{NAME} did not listen within 120 s; see {log_path}")


def options_message(name: str, language: str) -> str:
    return json.dumps(
        {
            "uid": name,
            "language": language,
            "task": "transcribe",
            "model": "whisper-base",  # the server's custom model overrides it
            "use_vad": True,
            "audio_format": "int16",
        }
    )


async def _receive(ws: websockets.ClientConnection, run: StreamRun) -> None:
    """Collects segment messages until the server closes the stream."""
    try:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("status") in ("ERROR", "WAIT") and run.error is None:
                run.error = f"{message['status']}: {message.get('message')}"
            if "segments" in message:
                run.messages.append((time.monotonic(), message))
    except ConnectionClosed:
        pass  # how it ends every stream


async def _connect(url: str, run: StreamRun) -> websockets.ClientConnection:
    ws = await websockets.connect(url, max_size=None, ping_interval=None, open_timeout=60)
    await ws.send(options_message(run.plan.name, LANGUAGE))
    ready = json.loads(await asyncio.wait_for(ws.recv(), 120))
    if ready.get("message") != "SERVER_READY":
        await ws.close()
        raise WebSocketException(f"{NAME} did not get ready: {ready}")
    return ws


async def _settle(run: StreamRun, timeout_s: float) -> None:
    """Waits until what it sends has stopped changing for `QUIET_S`: it decodes what it has
    buffered only until `END_OF_AUDIO`, where asrserve decodes everything it was sent."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < QUIET_S:
        current = run.messages[-1][1]["segments"] if run.messages else None
        if current != last:
            last, since = current, time.monotonic()
        await asyncio.sleep(0.1)


PROTOCOL = StreamProtocol(_connect, _receive, END_OF_AUDIO, _settle)


@dataclass(frozen=True, slots=True)
class Segment:
    start_s: float
    text: str
    arrived: float
    """When it first arrived in this state (completed or not)."""


def _segments(run: StreamRun) -> tuple[list[Segment], list[Segment]]:
    """(completed segments, each once at its first arrival; every live-text segment sent)."""
    completed: dict[tuple[str, str], Segment] = {}
    live: list[Segment] = []
    for at, message in run.messages:
        for s in message["segments"]:
            segment = Segment(float(s["start"]), s["text"].strip(), at)
            if s.get("completed"):
                completed.setdefault((s["start"], s["text"]), segment)
            else:
                live.append(segment)
    return sorted(completed.values(), key=lambda s: s.start_s), live


def _held_at_close(run: StreamRun) -> Segment | None:
    """The live text of the stream's last message, which is all the client keeps of it once
    `END_OF_AUDIO` closes the stream, at the first of the messages that have carried it since."""
    if not run.messages:
        return None
    live = [s for s in run.messages[-1][1]["segments"] if not s.get("completed")]
    if not live:
        return None
    start, text = live[-1]["start"], live[-1]["text"]
    arrived = run.messages[-1][0]
    for at, message in reversed(run.messages):
        if not any(
            not s.get("completed") and s["start"] == start and s["text"] == text
            for s in message["segments"]
        ):
            break
        arrived = at
    return Segment(float(start), text.strip(), arrived)


def match_clips(run: StreamRun) -> list[ClipOutcome]:
    """Each segment belongs to the clip in whose window it starts (as asrserve's utterances)."""
    plays = run.plan.plays
    windows = [p.window_s for p in plays]

    def clip_of(segment: Segment) -> int:
        return max(0, sum(1 for w in windows if w <= segment.start_s) - 1)

    completed, live = _segments(run)
    finals: list[list[Segment]] = [[] for _ in plays]
    partials: list[list[Segment]] = [[] for _ in plays]
    for segment in completed:
        finals[clip_of(segment)].append(segment)
    for segment in live:
        partials[clip_of(segment)].append(segment)
    held = _held_at_close(run)
    half = run.plan.duration_s / 2
    outcomes = []
    for i, (play, clip_finals, clip_partials) in enumerate(
        zip(plays, finals, partials, strict=True)
    ):
        heard = clip_finals + clip_partials
        final_text = " ".join(s.text for s in clip_finals if s.text)
        final_at = max((s.arrived for s in clip_finals), default=None)
        if held is not None and held.text and clip_of(held) == i:
            final_text = " ".join(t for t in (final_text, held.text) if t)
            final_at = max(held.arrived, final_at or held.arrived)
        outcomes.append(
            ClipOutcome(
                clip=play.clip,
                first_partial_s=(
                    min(s.arrived for s in heard) - run.due(play.onset_s) if heard else None
                ),
                final_s=final_at - run.due(play.end_s) if final_at is not None else None,
                final_text=final_text,
                # Its live text is a window's last segment, not an utterance's: not compared.
                last_partial_text="",
                delta_text="",
                second_half=play.end_s > half,
            )
        )
    return outcomes
