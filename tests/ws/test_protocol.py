"""FunASR's online-mode deltas: what a client that appends every text it gets ends up reading."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future

import pytest

from asrserve.engine import Partial, PendingFinal, Segment
from asrserve.ws.protocol import DeltaTracker, ProtocolError, is_end_message, parse_text_frame
from asrserve.ws.server import drop_unsent_finals


def appended(hypotheses: list[str], final: str) -> str:
    """The text a FunASR client shows after these partials and the utterance's final."""
    tracker = DeltaTracker()
    deltas = [tracker.delta(Partial(0, h, 0.0, 1.0)) for h in hypotheses]
    return "".join(deltas) + tracker.remainder(0, final)


def test_only_words_two_hypotheses_agree_on_are_sent() -> None:
    tracker = DeltaTracker()
    assert tracker.delta(Partial(0, "and so", 0.0, 1.0)) == ""
    assert tracker.delta(Partial(0, "and so my", 0.0, 1.0)) == "and so"
    assert tracker.delta(Partial(0, "and so my fellow", 0.0, 1.0)) == " my"
    # The hypothesis changed a word already sent: nothing more until it agrees again.
    assert tracker.delta(Partial(0, "and sew my fellow Americans", 0.0, 1.0)) == ""
    assert tracker.delta(Partial(0, "and so my fellow Americans", 0.0, 1.0)) == " fellow Americans"
    assert tracker.delta(Partial(0, "and so my fellow Americans ask", 0.0, 1.0)) == ""


def test_the_final_completes_the_utterance_without_repeating_it() -> None:
    text = appended(
        ["ask what", "ask what you", "ask what you can"],
        "Ask what you can do for your country.",
    )
    assert text == "ask what you can do for your country."


def test_a_final_that_reads_the_sent_words_otherwise_still_sends_the_rest() -> None:
    # The final's casing, punctuation and a word of its own differ from the partials: before,
    # the client's text stopped at "and so my fellow" and the rest of the utterance was lost.
    text = appended(
        ["and so my", "and so my fellow", "and so my fellow Americans"],
        "And so, my fellow Americans, ask not",
    )
    assert text == "and so my fellow Americans, ask not"
    text = appended(["S not", "S not"], "Ask not.")
    assert text == "S not"
    text = appended(["S not what", "S not what"], "Ask not what your country")
    assert text == "S not what your country"


def test_a_word_sent_far_from_its_place_in_the_final_does_not_skip_the_words_between() -> None:
    text = appended(["you know", "you know"], "Well I think that you know what you did")
    assert text.startswith("you know ") and text.endswith(" think that you know what you did")


def test_each_utterance_starts_afresh() -> None:
    tracker = DeltaTracker()
    tracker.delta(Partial(0, "one two", 0.0, 1.0))
    tracker.delta(Partial(0, "one two three", 0.0, 1.0))
    assert tracker.remainder(0, "One, two, three.") == " three."
    assert tracker.delta(Partial(1, "four", 1.0, 2.0)) == ""
    assert tracker.delta(Partial(1, "four five", 1.0, 2.0)) == "four"
    # A final for an utterance that sent nothing is all of it.
    assert tracker.remainder(2, "Six seven.") == "Six seven."


def test_funasr_svs_lang_goes_through_the_same_parser() -> None:
    for given, language in (("auto", None), ("ZH", "zh"), (None, None)):
        body: dict[str, object] = {"mode": "offline", "is_speaking": True}
        if given is not None:
            body["svs_lang"] = given
        _, config = parse_text_frame(json.dumps(body))
        assert config is not None and config.language == language


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("{not json", "The message is not JSON"),
        ("[1, 2]", "A text message must be a JSON object."),
        ('{"mode": "fast"}', "Bad configuration: mode: "),
        ('{"audio_fs": 100}', "Bad configuration: audio_fs: "),
        ('{"chunk_size": "5,x,5"}', "Bad configuration: chunk_size: "),
        ('{"is_end": true, "itn": "maybe"}', "Bad configuration: itn: "),
    ],
)
def test_a_bad_text_frame_gets_a_sentence_naming_what_is_wrong(text: str, sentence: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_text_frame(text)
    assert str(caught.value).startswith(sentence)


def test_speaking_flags_alone_carry_no_config_and_end_the_stream() -> None:
    data, config = parse_text_frame('{"is_speaking": false}')
    assert config is None and is_end_message(data)
    data, config = parse_text_frame('{"is_speaking": true}')
    assert config is None and not is_end_message(data)
    assert is_end_message(parse_text_frame('{"is_finished": true}')[0])


def test_a_config_frame_takes_funasr_spellings_and_ignores_unknown_keys() -> None:
    _, config = parse_text_frame(
        json.dumps({"mode": "2pass", "chunk_size": "5, 10, 5", "wav_name": "x" * 300, "extra": 1})
    )
    assert config is not None
    assert config.chunk_size == [5, 10, 5]
    assert len(config.wav_name) == 256
    assert config.is_pcm


def test_a_closed_streams_unsent_finals_are_cancelled_not_decoded() -> None:
    queued: Future[list[Segment]] = Future()
    decoding: Future[list[Segment]] = Future()
    assert decoding.set_running_or_notify_cancel()  # a worker has it: too late to stop
    events: asyncio.Queue[tuple[PendingFinal | Partial, bool] | None] = asyncio.Queue()
    for item in (
        (PendingFinal(0, 0.0, 1.0, decoding), False),
        (Partial(1, "so far", 1.0, 1.5), False),
        (PendingFinal(1, 1.0, 2.0, queued), False),
        None,
    ):
        events.put_nowait(item)
    assert drop_unsent_finals(events) == 1
    assert queued.cancelled() and not decoding.cancelled() and events.empty()
