"""The live load's levels and a stream's lag, on a fake clock: no timing, no flakes."""

from __future__ import annotations

from typing import cast

import pytest

from asrserve.engine import ModelRegistry
from asrserve.engine.streaming import EarlyFinalOutcome
from asrserve.observability.metrics import Metrics
from asrserve.ws.load import (
    LiveLoad,
    LoadLevel,
    LoadOptions,
    StreamCapacity,
    StreamLag,
    StreamShedder,
)
from asrserve.ws.options import StreamServerOptions
from asrserve.ws.server import StreamServer
from tests.ws.conftest import FakeClock, NotDraining


def load_with(lag: list[float], clock: FakeClock) -> LiveLoad:
    return LiveLoad(lambda: lag[0], LoadOptions(), clock=clock)


def test_levels_rise_with_the_batcher_lag_in_order() -> None:
    clock, lag = FakeClock(), [0.0]
    load = load_with(lag, clock)
    seen = []
    for value in (0.0, 0.2, 0.3, 0.7, 0.8, 1.9, 2.0, 5.0):
        lag[0] = value
        seen.append(load.level())
    assert seen == [
        LoadLevel.NORMAL, LoadLevel.NORMAL, LoadLevel.FEWER_PARTIALS, LoadLevel.FEWER_PARTIALS,
        LoadLevel.FINALS_ONLY, LoadLevel.FINALS_ONLY, LoadLevel.FULL, LoadLevel.FULL,
    ]  # fmt: skip
    assert not load.accepts_streams


def test_what_each_level_sheds() -> None:
    clock, lag = FakeClock(), [0.0]
    load = load_with(lag, clock)
    assert load.partial_interval(0.5) == 0.5 and load.accepts_streams
    lag[0] = 0.5
    assert load.partial_interval(0.5) == pytest.approx(1.5) and load.accepts_streams
    assert load.partial_interval(0.5, first=True) == 0.5, "an utterance's first partial is cheap"
    lag[0] = 1.0
    assert load.partial_interval(0.5) is None and load.accepts_streams
    assert load.partial_interval(0.5, first=True) is None, "paused means paused"
    lag[0] = 3.0
    assert load.partial_interval(0.5) is None and not load.accepts_streams


def test_finals_start_early_only_while_nothing_is_behind() -> None:
    clock, lag = FakeClock(), [0.0]
    load = load_with(lag, clock)
    assert load.may_start_early_final()
    lag[0] = 0.3
    assert not load.may_start_early_final(), "fewer partials already: no decode to risk"
    lag[0] = 0.0
    clock.now += LoadOptions().hold_s + 0.1
    assert load.may_start_early_final()
    for outcome in (EarlyFinalOutcome.USED, EarlyFinalOutcome.WASTED, EarlyFinalOutcome.USED):
        load.early_final_ended(outcome)
    assert load.early_finals == {EarlyFinalOutcome.USED: 2, EarlyFinalOutcome.WASTED: 1}


def test_a_level_holds_after_the_lag_is_gone_then_falls() -> None:
    clock, lag = FakeClock(), [2.5]
    load = load_with(lag, clock)
    assert load.level() is LoadLevel.FULL
    lag[0] = 0.0
    clock.now += 1.9
    assert load.level() is LoadLevel.FULL, "held for hold_s"
    clock.now += 0.2
    assert load.level() is LoadLevel.NORMAL
    # A lower level seen during the hold does not extend it.
    lag[0] = 2.5
    load.level()
    lag[0] = 0.5
    clock.now += 1.0
    assert load.level() is LoadLevel.FULL
    clock.now += 1.1
    assert load.level() is LoadLevel.FEWER_PARTIALS


def test_thresholds_must_be_in_order() -> None:
    with pytest.raises(ValueError):
        LoadOptions(fewer_partials_lag_s=1.0, finals_only_lag_s=0.5)
    with pytest.raises(ValueError):
        LoadOptions(partial_interval_factor=0.5)


def test_a_real_time_client_lags_by_what_waits() -> None:
    clock = FakeClock()
    lag = StreamLag(clock)
    lag.begin()
    clock.now += 0.06
    due = lag.due(0.06)  # the first frame, read as it was due
    assert due == clock.now
    lag.waiting(1, due)
    clock.now += 0.06
    lag.waiting(2, lag.due(0.12))
    assert lag.lag_s() == pytest.approx(0.06)
    lag.done(1)
    assert lag.lag_s() == pytest.approx(0.0)
    clock.now += 3.0
    assert lag.lag_s() == pytest.approx(3.0)
    assert lag.age_s(2) == pytest.approx(3.0) and lag.age_s(99) == 0.0


def test_a_client_faster_than_real_time_is_not_behind_while_the_server_keeps_pace() -> None:
    clock = FakeClock()
    lag = StreamLag(clock)
    lag.begin()
    # Ten seconds of audio arrive within 0.1 s: the last of it is due 10 s from the start.
    clock.now += 0.1
    lag.waiting(1, lag.due(10.0))
    assert lag.lag_s() == 0.0
    clock.now += 9.0
    assert lag.lag_s() == 0.0, "still ahead of its real-time place"
    clock.now += 3.0
    assert lag.lag_s() == pytest.approx(2.1)
    # A client that paused and came back late is due when its audio arrived.
    clock.now += 60.0
    assert lag.due(10.06) == clock.now


def test_frames_that_queued_while_the_stream_started_put_its_schedule_no_later() -> None:
    clock = FakeClock()
    lag = StreamLag(clock)
    lag.begin()  # the configuration arrived; its models take a second to load
    clock.now += 1.0
    # The second's frames, then read in a burst: due as they are read, none in the future.
    dues = [lag.due(0.06 * k) for k in range(1, 17)]
    assert dues == [clock.now] * 16
    clock.now += 0.06
    assert lag.due(0.06 * 17) == clock.now
    # A final queued now and not sent is late from now on, not a second from now.
    lag.waiting(1, lag.due(0.06 * 17))
    clock.now += 0.5
    assert lag.lag_s() == pytest.approx(0.5)


class FakeModel:
    """The final model's decode time so far, advanced by the test."""

    def __init__(self, workers: int = 1) -> None:
        self.busy_s = 0.0
        self.workers = workers
        self.loaded = True

    def __call__(self) -> tuple[float, int] | None:
        return (self.busy_s, self.workers) if self.loaded else None


def serve(
    capacity: StreamCapacity,
    clock: FakeClock,
    model: FakeModel,
    *,
    streams: int,
    busy_share: float,
    seconds: int,
) -> None:
    """`streams` real-time streams for `seconds`, 60 ms frames, with the model this busy."""
    for _ in range(int(seconds / 0.06)):
        clock.now += 0.06
        model.busy_s += 0.06 * busy_share * model.workers
        for _ in range(streams):
            capacity.heard(0.06)


def test_capacity_is_the_streams_that_fit_the_busy_share() -> None:
    clock, model = FakeClock(), FakeModel()
    capacity = StreamCapacity(model, clock=clock)
    assert capacity.estimate() is None, "nothing heard yet"
    serve(capacity, clock, model, streams=4, busy_share=0.41, seconds=5)
    assert capacity.estimate() is None, "20 s of stream audio: too little to tell"
    serve(capacity, clock, model, streams=4, busy_share=0.41, seconds=60)
    # Each stream costs 10.25 % of the model; 45 % of it fits 4 of them.
    assert capacity.estimate() == 4
    # Half-silent streams cost half as much: twice as many fit.
    serve(capacity, clock, model, streams=4, busy_share=0.205, seconds=61)
    assert capacity.estimate() == 8


def test_capacity_as_of_the_last_sample_is_kept_for_other_threads() -> None:
    clock, model = FakeClock(), FakeModel()
    capacity = StreamCapacity(model, clock=clock)
    serve(capacity, clock, model, streams=4, busy_share=0.41, seconds=65)
    # Refreshed by the streams' own audio, at most once a second, never computed by a reader.
    assert capacity.last_estimate == 4
    serve(capacity, clock, model, streams=4, busy_share=0.205, seconds=61)
    assert capacity.last_estimate == 8


def test_finals_start_early_only_with_room_to_spare() -> None:
    server = StreamServer(
        cast(ModelRegistry, None), StreamServerOptions(), Metrics(), NotDraining()
    )
    clock, model, lag = FakeClock(), FakeModel(), [0.0]
    server.load = load_with(lag, clock)
    server.capacity = StreamCapacity(model, clock=clock)
    server.active = 4
    assert server.may_start_early_final(), "room unknown yet, nothing behind"
    serve(server.capacity, clock, model, streams=4, busy_share=0.205, seconds=65)
    assert server.capacity.last_estimate == 8 and server.may_start_early_final()
    server.active = 8
    assert not server.may_start_early_final(), "as many streams as keep real time"
    server.active = 4
    lag[0] = 0.5
    assert not server.may_start_early_final(), "something is behind"
    server.early_final_ended(EarlyFinalOutcome.WASTED)
    assert server.stats().early_finals == {"wasted": 1}


def test_capacity_reads_the_last_minute_per_worker() -> None:
    clock, model = FakeClock(), FakeModel(workers=2)
    capacity = StreamCapacity(model, clock=clock)
    serve(capacity, clock, model, streams=2, busy_share=0.9, seconds=60)
    assert capacity.estimate() == 1, "45 % a stream, of two workers' time"
    # Other work (HTTP requests) made the model busy then; now it is the streams alone.
    serve(capacity, clock, model, streams=2, busy_share=0.1, seconds=90)
    assert capacity.estimate() == 9
    # Asked often (every scrape, every readiness probe), it keeps one sample a second.
    for _ in range(10_000):
        clock.now += 0.001
        capacity.estimate()
    assert len(capacity._samples) <= 62


def test_capacity_is_unknown_while_the_model_is_not_loaded_or_never_busy() -> None:
    clock, model = FakeClock(), FakeModel()
    model.loaded = False
    capacity = StreamCapacity(model, clock=clock)
    serve(capacity, clock, model, streams=4, busy_share=0.4, seconds=60)
    assert capacity.estimate() is None
    model.loaded = True
    serve(capacity, clock, model, streams=4, busy_share=0.0, seconds=60)
    assert capacity.estimate() is None, "streams of silence cost no final"
    with pytest.raises(ValueError):
        LoadOptions(capacity_busy_share=0.0)


def shedder_on(clock: FakeClock) -> StreamShedder:
    return StreamShedder(LoadOptions(shed_lag_s=5.0, shed_every_s=1.0), clock=clock)


def test_streams_falling_behind_together_are_shed_newest_first_one_a_second() -> None:
    clock = FakeClock()
    shedder = shedder_on(clock)
    lags = [6.0, 7.0, 6.5, 5.5]  # in the order they were admitted
    assert shedder.pick(lambda: lags) == 3
    assert shedder.pick(lambda: lags) is None  # not again within the second
    clock.now += 1.0
    lags = [7.0, 8.0, 7.5]  # the last one gone, the others still losing ground
    assert shedder.pick(lambda: lags) == 2
    assert shedder.shed == 2


def test_no_stream_is_shed_while_the_worst_is_catching_up() -> None:
    clock = FakeClock()
    shedder = shedder_on(clock)
    assert shedder.pick(lambda: [9.0, 8.0, 7.0]) == 2
    clock.now += 1.0
    assert shedder.pick(lambda: [8.2, 7.1]) is None  # 9 -> 8.2: the freed share shows
    clock.now += 1.0
    assert shedder.pick(lambda: [7.0, 6.0]) is None
    clock.now += 1.0
    assert shedder.pick(lambda: [7.0, 6.5]) == 1  # stalled: it would never drain


def test_one_stream_behind_is_not_the_server_behind() -> None:
    clock = FakeClock()
    shedder = shedder_on(clock)
    # One late stream is its own problem (its client, its bound); the rest keep up.
    assert shedder.pick(lambda: [12.0, 0.2, 0.0]) is None
    clock.now += 1.0
    assert shedder.pick(lambda: [4.9, 4.9, 4.9]) is None  # none of them 5 s behind yet


def test_the_shed_stream_is_the_newest_with_work_pending() -> None:
    clock = FakeClock()
    shedder = shedder_on(clock)
    # The newest two have nothing waiting (silent): closing them would free nothing.
    assert shedder.pick(lambda: [6.0, 5.0, 0.0, 0.0]) == 1
    clock.now += 1.0
    assert shedder.pick(lambda: []) is None


def test_shed_options_must_be_positive() -> None:
    with pytest.raises(ValueError, match="shed"):
        LoadOptions(shed_lag_s=0.0)
    with pytest.raises(ValueError, match="shed"):
        LoadOptions(shed_every_s=0.0)
