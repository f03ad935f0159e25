"""Stand-ins the engine's live-path tests share."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from asrserve.engine import DecodeOptions, LoadedModel, Segment


class Inline:
    """A batcher that decodes each submission when it is submitted, on the model's engine
    (a test-controlled scheduler: which chunk each answer comes with is exact)."""

    def __init__(self, model: LoadedModel) -> None:
        self.engine = model.engine

    def submit(self, audio: np.ndarray, options: DecodeOptions) -> Future[list[Segment]]:
        future: Future[list[Segment]] = Future()
        future.set_result(self.engine.transcribe_chunks([audio], options)[0])
        return future
