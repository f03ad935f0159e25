"""TLS with a configured or a generated self-signed certificate, and the second (FunASR) port."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import websockets
from websockets.typing import Subprotocol

from asrserve.cli.tls import ensure_self_signed
from asrserve.engine import decode
from asrserve.engine.audio import float32_to_pcm16
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.processes import free_port, start_server
from asrserve.evaluation.wer import word_errors


async def offline_session(url: str, pcm: bytes, context: ssl.SSLContext | None) -> list[dict]:
    async with websockets.connect(url, subprotocols=[Subprotocol("binary")], ssl=context) as ws:
        await ws.send(
            json.dumps(
                {"mode": "offline", "wav_name": "tls", "wav_format": "pcm", "is_speaking": True}
            )
        )
        for i in range(0, len(pcm), 1920):
            await ws.send(pcm[i : i + 1920])
        await ws.send(json.dumps({"is_speaking": False, "is_end": True}))
        return [json.loads(m) async for m in ws]


def test_wss_with_a_self_signed_certificate_on_both_ports(tmp_path: Path, jfk: Clip) -> None:
    stream_port = free_port()
    server = start_server(
        tmp_path, name="tls", tls_self_signed="true", stream_port=str(stream_port)
    )
    try:
        assert server.url.startswith("https://")
        assert (server.data_dir / "tls" / "selfsigned.crt").is_file()
        assert oct((server.data_dir / "tls" / "selfsigned.key").stat().st_mode & 0o777) == "0o600"
        # https answers, with certificate checks off as in FunASR's client.
        assert httpx.get(f"{server.url}/health", verify=False).json() == {"status": "ok"}
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        pcm = float32_to_pcm16(decode(jfk.audio))
        for port in (server.url.rsplit(":", 1)[1], str(stream_port)):
            messages = asyncio.run(offline_session(f"wss://127.0.0.1:{port}/", pcm, context))
            assert word_errors([jfk.text], [messages[0]["text"]]).rate < 0.1
            assert messages[-1]["is_end"] is True
        # The certificate really is the generated one.
        trusting = ssl.create_default_context(
            cafile=str(server.data_dir / "tls" / "selfsigned.crt")
        )
        assert (
            httpx.get(f"https://localhost:{stream_port}/health", verify=trusting).status_code == 200
        )
    finally:
        server.stop()


def test_wss_with_a_configured_certificate_that_the_client_verifies(
    tmp_path: Path, jfk: Clip
) -> None:
    # An operator's own certificate (made here by the same code, in a directory of its own):
    # the server must present exactly it, and a verifying client must accept it.
    cert, key = ensure_self_signed(tmp_path / "operator", hosts=("localhost",))
    server = start_server(tmp_path, name="tls-own", tls_certfile=str(cert), tls_keyfile=str(key))
    try:
        assert not (server.data_dir / "tls").exists(), "no certificate was generated"
        verifying = ssl.create_default_context(cafile=str(cert))
        port = server.url.rsplit(":", 1)[1]
        pcm = float32_to_pcm16(decode(jfk.audio))
        messages = asyncio.run(offline_session(f"wss://localhost:{port}/", pcm, verifying))
        assert word_errors([jfk.text], [messages[0]["text"]]).rate < 0.1
        assert messages[-1]["is_end"] is True
    finally:
        server.stop()
