"""`asrserve stream FILE`: play a file to a FunASR-protocol WebSocket server as live audio.

The file is decoded (any format) to 16 kHz mono, sent as s16le PCM frames after FunASR's
configuration message, paced in real time or as fast as possible, and closed with the end
message. Partials are shown live on one line on stderr; each final is printed on stdout with its
start and end time, so `asrserve stream talk.mp3 > talk.txt` keeps just the transcript.

The protocol client (`stream_audio`) knows nothing of the terminal: it takes PCM and a callback
and returns every message, so the streaming benchmark and tests can reuse it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from asrserve.engine import SAMPLE_RATE, AsrError, Mode, decode
from asrserve.engine.audio import float32_to_pcm16

MODES = tuple(m.value for m in Mode)
FINAL_MODES = frozenset({"2pass-offline", "offline"})
END_MESSAGE = {"is_speaking": False, "is_end": True}

Message = dict[str, Any]


class StreamError(Exception):
    """A stream that did not complete: no connection, a server error, or no end acknowledgement.

    The text is one sentence for the user; `code` is the server's error code when it sent one.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def funasr_config(
    mode: str, *, wav_name: str, hotwords: str = "", sample_rate: int = SAMPLE_RATE
) -> Message:
    """The first text frame of a session, as FunASR's own clients send it."""
    return {
        "mode": mode,
        "chunk_size": [5, 10, 5],
        "chunk_interval": 10,
        "encoder_chunk_look_back": 4,
        "decoder_chunk_look_back": 0,
        "wav_name": wav_name,
        "wav_format": "pcm",
        "audio_fs": sample_rate,
        "is_speaking": True,
        "hotwords": hotwords,
        "itn": True,
    }


async def stream_audio(
    url: str,
    pcm16: bytes,
    *,
    mode: str = "2pass",
    chunk_ms: int = 60,
    realtime: bool = True,
    hotwords: str = "",
    wav_name: str = "stream",
    sample_rate: int = SAMPLE_RATE,
    on_message: Callable[[Message], None] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    open_timeout: float = 10.0,
    end_timeout: float = 300.0,
) -> list[Message]:
    """Stream s16le mono PCM to a FunASR-protocol server; return every message it sent, in order.

    Sends the configuration, then `chunk_ms` frames (paced at real time when `realtime`, else as
    fast as the socket takes them), then `{"is_speaking": false, "is_end": true}`, and reads
    until the server acknowledges the end and closes. `on_message` sees each message as it
    arrives. Raises StreamError when the connection fails, the server sends an `error`, or the
    connection closes (or `end_timeout` passes after the end message) without the acknowledgement.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if chunk_ms <= 0:
        raise ValueError("chunk_ms must be positive")
    frame_bytes = max(2, sample_rate * chunk_ms // 1000 * 2)
    messages: list[Message] = []
    connection = await _connect(url, open_timeout, ssl_context)
    async with connection as ws:
        reader = asyncio.create_task(_read(ws, messages, on_message))
        with contextlib.suppress(ConnectionClosed):
            # A server that closes early (an error, a limit) stops the sending; the reader
            # has its last words, judged below.
            await ws.send(
                json.dumps(
                    funasr_config(
                        mode, wav_name=wav_name, hotwords=hotwords, sample_rate=sample_rate
                    )
                )
            )
            await _send_frames(ws, pcm16, frame_bytes, sample_rate, realtime, reader)
            await ws.send(json.dumps(END_MESSAGE))
        try:
            await asyncio.wait_for(asyncio.shield(reader), end_timeout)
        except TimeoutError:
            reader.cancel()
            raise StreamError(
                f"The server sent no end acknowledgement within {end_timeout:g} s "
                "of the end of the audio."
            ) from None
    _check(messages, ws, reader.result())
    return messages


async def _connect(
    url: str, open_timeout: float, ssl_context: ssl.SSLContext | None
) -> ClientConnection:
    try:
        return await websockets.connect(
            url,
            subprotocols=[Subprotocol("binary")],
            max_size=None,
            open_timeout=open_timeout,
            ssl=ssl_context,
        )
    except InvalidURI as exc:
        raise StreamError(f"{url!r} is not a WebSocket URL; use ws://host:port/.") from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise StreamError(
            f"Cannot connect to {url}: {_reason(exc)}. Is `asrserve serve` running there?"
        ) from exc


async def _send_frames(
    ws: ClientConnection,
    pcm16: bytes,
    frame_bytes: int,
    sample_rate: int,
    realtime: bool,
    reader: asyncio.Task[str | None],
) -> None:
    start = time.monotonic()
    for offset in range(0, len(pcm16), frame_bytes):
        if reader.done():  # the server closed or sent an error: stop talking
            return
        await ws.send(pcm16[offset : offset + frame_bytes])
        if realtime:
            sent_s = (offset + frame_bytes) / 2 / sample_rate
            await asyncio.sleep(max(0.0, start + sent_s - time.monotonic()))
        else:
            await asyncio.sleep(0)  # let the reader run between frames


async def _read(
    ws: ClientConnection, messages: list[Message], on_message: Callable[[Message], None] | None
) -> str | None:
    """Collects messages until the end acknowledgement, an error or the close; returns what
    was wrong with a frame that is not a JSON object, if one came."""
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            if isinstance(raw, bytes):
                continue  # the protocol has no binary server messages
            try:
                message = json.loads(raw)
            except json.JSONDecodeError:
                return f"The server sent a message that is not JSON: {raw[:200]!r}."
            if not isinstance(message, dict):
                return f"The server sent JSON that is not an object: {raw[:200]!r}."
            messages.append(message)
            if on_message is not None:
                on_message(message)
            if "error" in message or message.get("is_end"):
                return None
    return None


def _check(messages: list[Message], ws: ClientConnection, bad_frame: str | None) -> None:
    if bad_frame is not None:
        raise StreamError(bad_frame)
    for message in messages:
        if "error" in message:
            code = message.get("code")
            suffix = f" ({code})" if code else ""
            raise StreamError(f"The server reported an error{suffix}: {message['error']}", code)
    if not any(m.get("is_end") for m in messages):
        close = ws.close_code
        how = f" (close code {close}{f': {ws.close_reason}' if ws.close_reason else ''})"
        raise StreamError(
            "The server closed the connection without acknowledging the end of the stream"
            + (how if close is not None else "")
            + "."
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def _clock(ms: float) -> str:
    seconds, millis = divmod(round(ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    head = f"{hours}:{minutes:02d}" if hours else f"{minutes:02d}"
    return f"{head}:{seconds:02d}.{millis:03d}"


def message_span(message: Message) -> tuple[float, float] | None:
    """A final's start and end in ms: from its sentences, its word times, or our utterance
    times; None when it has none. `timestamp` may be a list or (C++ servers) a JSON string."""
    sentences = message.get("stamp_sents") or []
    if sentences and isinstance(sentences, list):
        return float(sentences[0]["start"]), float(sentences[-1]["end"])
    stamps = message.get("timestamp")
    if isinstance(stamps, str):
        with contextlib.suppress(json.JSONDecodeError):
            stamps = json.loads(stamps)
    if isinstance(stamps, list) and stamps:
        return float(stamps[0][0]), float(stamps[-1][1])
    if "start_time" in message and "end_time" in message:
        return float(message["start_time"]), float(message["end_time"])
    return None


class TranscriptPrinter:
    """Shows a session's messages: partials live on one stderr line (plain lines when stderr is
    not a terminal), each final on its own stdout line with its times; or every message as JSON.
    """

    def __init__(self, *, as_json: bool, live: bool) -> None:
        self.as_json = as_json
        self.live = live
        self._partial = ""  # the current utterance as partials have shown it
        self._shown = ""
        self._finals = 0

    def __call__(self, message: Message) -> None:
        if self.as_json:
            typer.echo(json.dumps(message, ensure_ascii=False))
            return
        if "error" in message or message.get("is_end"):
            self._clear()
            return
        mode = str(message.get("mode", ""))
        is_final = mode in FINAL_MODES or (
            mode == "online" and ("stamp_sents" in message or "timestamp" in message)
        )
        if is_final:
            text = message.get("utterance_text") if mode == "online" else message.get("text")
            if text is None:  # a plain FunASR online server: the deltas are the text
                text = self._partial + str(message.get("text", ""))
            self._final(str(text), message_span(message))
            return
        if "utterance_text" in message:
            self._partial = str(message["utterance_text"])
        else:
            self._partial += str(message.get("text", ""))
        self._show(self._partial.strip())

    def finish(self, *, complete: bool = True) -> None:
        """Clears the live line. After a complete stream, an online server's unfinished line
        (FunASR's online mode has no finals) is the result."""
        self._clear()
        if complete and self._partial.strip() and not self._finals:
            self._final(self._partial, None)

    def _final(self, text: str, span: tuple[float, float] | None) -> None:
        self._clear()
        self._partial = ""
        text = text.strip()
        if not text:
            return
        self._finals += 1
        times = f"[{_clock(span[0])} --> {_clock(span[1])}] " if span else ""
        typer.echo(f"{times}{text}")

    def _show(self, text: str) -> None:
        if not text or text == self._shown:
            return
        self._shown = text
        if not self.live:
            typer.echo(f"... {text}", err=True)
            return
        width = shutil.get_terminal_size().columns - 1
        if len(text) > width:
            text = "…" + text[-(width - 1) :]
        typer.echo(f"\r\x1b[2K\x1b[2m{text}\x1b[0m", err=True, nl=False)

    def _clear(self) -> None:
        if self.live and self._shown:
            typer.echo("\r\x1b[2K", err=True, nl=False)
        self._shown = ""


def stream(
    file: Path = typer.Argument(..., help="An audio or video file in any format.", exists=True),
    url: str = typer.Option("ws://127.0.0.1:8000/", help="The server's WebSocket URL."),
    mode: Mode = typer.Option(Mode.TWO_PASS, help="What the server sends back."),
    realtime: bool = typer.Option(
        True, "--realtime/--fast", help="Pace the audio in real time, or send it at once."
    ),
    hotwords: str = typer.Option(
        "", help='Words to favour: "w1,w2", space-separated, or JSON {"w": 10}.'
    ),
    chunk_ms: int = typer.Option(60, min=10, max=10000, help="Audio per frame, in ms."),
    as_json: bool = typer.Option(False, "--json", help="Print every server message as JSON."),
    insecure: bool = typer.Option(
        False, "--insecure", help="For wss://: accept any certificate (a self-signed server)."
    ),
) -> None:
    """Stream a file to a FunASR-protocol server as live audio; print partials and finals."""
    try:
        pcm16 = float32_to_pcm16(decode(file))
    except AsrError as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(1) from exc
    printer = TranscriptPrinter(as_json=as_json, live=sys.stderr.isatty())
    try:
        asyncio.run(
            stream_audio(
                url,
                pcm16,
                mode=mode.value,
                chunk_ms=chunk_ms,
                realtime=realtime,
                hotwords=hotwords,
                wav_name=file.name,
                on_message=printer,
                ssl_context=_ssl_context(url, insecure=insecure),
            )
        )
    except StreamError as exc:
        printer.finish(complete=False)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        printer.finish(complete=False)
        raise typer.Exit(130) from None
    printer.finish()


def _ssl_context(url: str, *, insecure: bool) -> ssl.SSLContext | None:
    if not url.startswith("wss://"):
        return None
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
