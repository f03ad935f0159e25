"""Locust load test: real speech posted to `/api/v1/recognize` and `/v1/audio/transcriptions`.

The seed's own load test, against any asrserve (a local server, the Compose stack's nginx, a
cluster's ingress). Each simulated user posts clips of the development set's ordinary English
speech, alternating the seed endpoint and the OpenAI-compatible one, and checks that each answer
carries text. Every user stops after LOCUST_MAX_REQUESTS requests (default 40), so a run is
bounded in count as well as by `--run-time`.

    .venv/bin/locust -f bench/locustfile.py --headless --host http://127.0.0.1:8000 \\
        --users 8 --spawn-rate 8 --run-time 60s
    .venv/bin/python -m bench.load      # starts a server, runs this, writes docs/benchmarks-load.md

LOCUST_CLIPS: how many clips to draw from (default 40); LOCUST_API_KEY: sent as a bearer token.
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

from locust import HttpUser, between, task
from locust.exception import StopUser

from asrserve.evaluation.devset import Clip, dev_set_dir, load_subset

MAX_REQUESTS = int(os.environ.get("LOCUST_MAX_REQUESTS", "40"))
CLIP_COUNT = int(os.environ.get("LOCUST_CLIPS", "40"))


def _clips() -> list[tuple[str, bytes]]:
    clips: list[Clip] = [
        c
        for c in load_subset("en", dev_set_dir())
        if "read" in c.tags and "poetry" not in c.tags and c.duration <= 15
    ][:CLIP_COUNT]
    if not clips:
        raise RuntimeError("no development-set clips: run `make test-data`")
    return [(Path(c.audio).name, Path(c.audio).read_bytes()) for c in clips]


CLIPS = _clips()


class SpeechUser(HttpUser):
    """One client sending clips back to back, with a short think time."""

    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.sent = 0
        self.order = itertools.cycle(random.Random(id(self)).sample(CLIPS, len(CLIPS)))
        key = os.environ.get("LOCUST_API_KEY")
        if key:
            self.client.headers["Authorization"] = f"Bearer {key}"

    def _post(self, path: str, field: str, data: dict[str, str] | None = None) -> None:
        """One clip to `path` in the form field `field`; a failure unless 200 with text."""
        self.sent += 1
        if self.sent > MAX_REQUESTS:
            raise StopUser()
        name, audio = next(self.order)
        with self.client.post(
            path,
            files={field: (name, audio, "audio/wav")},
            data=data,
            name=path,
            timeout=600,
            catch_response=True,
        ) as response:
            if response.status_code != 200 or not response.json().get("text"):
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task
    def recognize(self) -> None:
        # No language, as the seed's clients send it: the server detects it.
        self._post("/api/v1/recognize", "audio")

    @task
    def transcribe(self) -> None:
        self._post("/v1/audio/transcriptions", "file", {"model": "whisper-1", "language": "en"})
