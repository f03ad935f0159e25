"""A FunASR WebSocket client for the tests: the configuration message, PCM of a real clip, and
one session that sends it all and collects every message the server sends back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from asrserve.engine import decode
from asrserve.engine.audio import float32_to_pcm16, resample
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.processes import ServerProcess

FRAME = 1920  # bytes: 60 ms of 16 kHz s16le, what FunASR's clients send


def ws_url(server: ServerProcess) -> str:
    """Where the server takes streams (FunASR's clients connect to the root path)."""
    return server.url.replace("http://", "ws://") + "/"


def config(**overrides: Any) -> str:
    base = {
        "mode": "2pass",
        "chunk_size": [5, 10, 5],
        "chunk_interval": 10,
        "wav_name": "test",
        "wav_format": "pcm",
        "audio_fs": 16000,
        "is_speaking": True,
        "hotwords": "",
        "itn": True,
    }
    return json.dumps({**base, **overrides})


def pcm_of(clip: Clip, *, lead: float = 0.5, tail: float = 1.5, rate: int = 16000) -> bytes:
    audio = np.concatenate(
        [
            np.zeros(int(lead * 16000), np.float32),
            decode(clip.audio),
            np.zeros(int(tail * 16000), np.float32),
        ]
    )
    if rate != 16000:
        audio = resample(audio, 16000, rate)
    return float32_to_pcm16(audio)


async def session(
    url: str,
    first: str,
    audio: bytes,
    *,
    end: dict[str, Any] | None = None,
    frame: int = FRAME,
    pace: float = 0.0,
) -> list[dict[str, Any]]:
    """One client session; returns every message the server sent, in order."""
    messages: list[dict[str, Any]] = []
    async with websockets.connect(url, subprotocols=[Subprotocol("binary")], max_size=None) as ws:
        assert ws.subprotocol == "binary"

        async def receive() -> None:
            try:
                async for raw in ws:
                    messages.append(json.loads(raw))
            except ConnectionClosed:
                pass

        reader = asyncio.create_task(receive())
        await ws.send(first)
        for i in range(0, len(audio), frame):
            await ws.send(audio[i : i + frame])
            if pace:
                await asyncio.sleep(pace)
        await ws.send(
            json.dumps(end if end is not None else {"is_speaking": False, "is_end": True})
        )
        await asyncio.wait_for(reader, 120)
    return messages


def finals(messages: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["mode"] == mode]
