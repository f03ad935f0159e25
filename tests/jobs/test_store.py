"""Both job stores (SQLite in tmp_path, a real PostgreSQL) with the same tests: durability, atomic
claims, leases, paging, lifecycle."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from asrserve.engine import AudioTooLargeError, EmptyAudioError, InvalidOptionError
from asrserve.evaluation.services import PostgresServer
from asrserve.jobmodel.errors import (
    InvalidCursorError,
    InvalidWebhookUrlError,
    JobNotFinishedError,
    JobStoreUnavailableError,
)
from asrserve.jobmodel.records import JobState, WebhookState, is_valid_job_id, new_job_id
from asrserve.jobs.postgres import PostgresJobStore
from asrserve.jobs.sqlite import DB_NAME, STRAY_UPLOAD_GRACE_S, SQLiteJobStore
from asrserve.jobs.sqlstore import SqlJobStore
from tests.jobs.conftest import AUDIO, StoreFactory, make_transcript

OPTIONS = {"language": "en", "response_format": "srt", "prompt": "Zürich, naïve – ok"}


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def create(store: SqlJobStore, **kwargs: object) -> str:
    args: dict[str, object] = {"filename": "talk.mp3", "model": "whisper-base", "options": {}}
    args.update(kwargs)
    return store.create(AUDIO, **args).id  # type: ignore[arg-type]


def test_created_job_and_upload_are_durable(make_store: StoreFactory, tmp_path: Path) -> None:
    first = make_store()
    job = first.create(
        io.BytesIO(AUDIO),
        filename="../../talk.mp3",
        model="whisper-base",
        options=OPTIONS,
        webhook_url="https://example.com/hook",
    )
    # A second store on the same directory (as after a restart) sees everything at once,
    # without the first being closed: create() committed and fsynced before returning.
    second = make_store()
    seen = second.get(job.id)
    assert seen == job
    assert seen is not None
    assert seen.state is JobState.QUEUED
    assert seen.options == OPTIONS
    assert seen.filename == "../../talk.mp3"  # kept for display, never used as a path
    assert seen.webhook_url == "https://example.com/hook"
    assert seen.upload_bytes == len(AUDIO)
    assert second.upload_path(job.id).read_bytes() == AUDIO
    assert second.upload_path(job.id).parent == tmp_path / "jobs" / "uploads"
    first.close()
    second.close()


def test_create_accepts_paths_and_bytes(store: SqlJobStore, tmp_path: Path) -> None:
    source = tmp_path / "in.wav"
    source.write_bytes(AUDIO * 3)
    from_path = store.create(source, filename="in.wav", model="m", options={})
    from_bytes = store.create(b"abc", filename="b", model="m", options={})
    assert store.upload_path(from_path.id).read_bytes() == AUDIO * 3
    assert store.upload_path(from_bytes.id).read_bytes() == b"abc"


def test_rejected_uploads_leave_nothing_behind(store: SqlJobStore) -> None:
    with pytest.raises(AudioTooLargeError, match="larger than the 100 bytes allowed"):
        store.create(AUDIO, filename="a", model="m", options={}, max_bytes=100)
    with pytest.raises(EmptyAudioError):
        store.create(b"", filename="a", model="m", options={})
    with pytest.raises(InvalidWebhookUrlError):
        store.create(AUDIO, filename="a", model="m", options={}, webhook_url="ftp://x/y")
    with pytest.raises(TypeError):
        store.create(AUDIO, filename="a", model="m", options={"bad": object()})
    assert store.list().jobs == []
    assert list(store.uploads_dir.iterdir()) == []


def test_claim_next_is_atomic_under_concurrency(store: SqlJobStore) -> None:
    ids = {create(store) for _ in range(20)}
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    errors: list[BaseException] = []

    def worker(n: int) -> None:
        start.wait()
        try:
            while (job := store.claim_next(f"worker-{n}")) is not None:
                with lock:
                    claimed.append((job.id, f"worker-{n}"))
        except BaseException as exc:  # reported below: a thread's exception fails no test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(i for i, _ in claimed) == sorted(ids)  # each job exactly once
    for job_id, worker_id in claimed:
        job = store.get(job_id)
        assert job is not None
        assert job.state is JobState.RUNNING
        assert job.attempts == 1
        assert job.worker_id == worker_id
    assert store.queue_depth() == 0


def test_claim_next_is_atomic_across_processes_sharing_the_store(make_store: StoreFactory) -> None:
    # One connection per store instance, as separate processes would have: the database's own
    # locking (BEGIN IMMEDIATE, SKIP LOCKED) must keep the claims exclusive, not our lock.
    stores = [make_store() for _ in range(8)]
    ids = {create(stores[0]) for _ in range(20)}
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    errors: list[BaseException] = []

    def worker(n: int) -> None:
        start.wait()
        try:
            while (job := stores[n].claim_next(f"worker-{n}")) is not None:
                with lock:
                    claimed.append(job.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(claimed) == sorted(ids)
    for s in stores:
        s.close()


def test_claim_takes_the_oldest_queued_job_first(make_store: StoreFactory) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    order = []
    for _ in range(3):
        order.append(create(store))
        clock.now += 1
    assert [store.claim_next("w").id for _ in range(3)] == order  # type: ignore[union-attr]
    assert store.claim_next("w") is None


def test_paging_is_stable_and_complete(make_store: StoreFactory) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    ids = []
    for i in range(25):
        ids.append(create(store))
        if i % 3 == 0:  # several jobs share a timestamp: the id breaks the tie
            clock.now += 0.5
    jobs = [store.get(i) for i in ids]
    expected = [j.id for j in sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)]  # type: ignore[union-attr]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list(limit=7, cursor=cursor)
        assert all(j.result is None for j in page.jobs)  # listings leave results out
        seen += [j.id for j in page.jobs]
        pages += 1
        if pages == 2:
            # Jobs created and deleted between pages neither shift nor repeat later pages.
            clock.now += 10
            create(store)
            victim = expected[20]
            store.claim_next("w")  # the oldest job runs; then finish and delete one in page 3
            store.request_cancel(victim)
            assert store.delete(victim)
            expected.remove(victim)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    assert len(seen) == len(set(seen)) == 24
    assert pages == 4


def test_listing_filters_by_state_and_rejects_bad_cursors(store: SqlJobStore) -> None:
    a, b, c = create(store), create(store), create(store)
    store.request_cancel(b)
    assert [j.id for j in store.list(state=JobState.CANCELLED).jobs] == [b]
    assert {j.id for j in store.list(state=JobState.QUEUED).jobs} == {a, c}
    for bad in ("nonsense", "", "Zm9vOmJhcg", "bmFuOjAwMDA="):
        with pytest.raises(InvalidCursorError):
            store.list(cursor=bad)
    with pytest.raises(InvalidOptionError):
        store.list(limit=0)


def test_cancel_queued_job_is_immediate(store: SqlJobStore) -> None:
    job_id = create(store)
    job = store.request_cancel(job_id)
    assert job is not None
    assert job.state is JobState.CANCELLED
    assert job.finished_at is not None
    assert job.expires_at is not None
    assert not store.upload_path(job_id).exists()  # finished: the upload is no longer needed
    assert store.claim_next("w") is None
    assert store.request_cancel(new_job_id()) is None


def test_cancel_running_job_is_flagged_until_the_worker_stops(store: SqlJobStore) -> None:
    job_id = create(store)
    store.claim_next("w")
    assert store.update_progress(job_id, 1.0, 10.0, worker_id="w") is False
    job = store.request_cancel(job_id)
    assert job is not None
    assert job.state is JobState.RUNNING
    assert job.cancel_requested
    assert store.is_cancel_requested(job_id)
    assert store.update_progress(job_id, 2.0, 10.0, worker_id="w") is True  # worker must stop
    # A decode that ends just after the cancel still ends cancelled: the client was told so.
    done = store.complete(job_id, make_transcript(), worker_id="w")
    assert done is not None
    assert done.state is JobState.CANCELLED
    assert done.result is None
    assert not store.is_cancel_requested(job_id)


def test_worker_transitions_are_fenced_by_worker_id(store: SqlJobStore) -> None:
    job_id = create(store)
    store.claim_next("w1")
    assert store.update_progress(job_id, 1.0, 10.0, worker_id="other") is True
    assert store.complete(job_id, make_transcript(), worker_id="other") is None
    assert store.fail(job_id, "x", "y", worker_id="other") is None
    assert not store.release(job_id, worker_id="other")
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.RUNNING
    transcript = make_transcript(duration=33.0)
    done = store.complete(job_id, transcript, worker_id="w1")
    assert done is not None
    assert done.state is JobState.SUCCEEDED
    assert done.result == transcript
    assert done.progress_done_s == done.progress_total_s == 33.0
    assert store.complete(job_id, transcript, worker_id="w1") is None  # finished is final


def test_fail_records_code_and_message(store: SqlJobStore) -> None:
    job_id = create(store)
    store.claim_next("w")
    job = store.fail(job_id, "audio_decode_error", "The file is not audio.")
    assert job is not None
    assert (job.state, job.error_code, job.error_message) == (
        JobState.FAILED,
        "audio_decode_error",
        "The file is not audio.",
    )


def test_delete_removes_finished_jobs_only(store: SqlJobStore) -> None:
    job_id = create(store)
    with pytest.raises(JobNotFinishedError, match="cancel it first"):
        store.delete(job_id)
    store.claim_next("w")
    with pytest.raises(JobNotFinishedError):
        store.delete(job_id)
    store.complete(job_id, make_transcript())
    assert store.delete(job_id) is True
    assert store.get(job_id) is None
    assert not store.upload_path(job_id).exists()
    assert store.delete(job_id) is False


def test_purge_expired_after_retention(make_store: StoreFactory) -> None:
    clock = FakeClock()
    store = make_store(clock=clock, retention_s=100.0)
    finished = create(store)
    clock.now += 1
    unfinished = create(store)
    store.claim_next("w")
    store.complete(finished, make_transcript())
    job = store.get(finished)
    assert job is not None
    assert job.expires_at == clock.now + 100.0
    assert store.purge_expired(clock.now + 99.0) == 0
    assert store.get(finished) is not None
    assert store.purge_expired(clock.now + 100.0) == 1
    assert store.get(finished) is None
    assert store.get(unfinished) is not None  # unfinished jobs never expire
    assert store.purge_expired(clock.now + 1e9) == 0
    assert store.upload_path(unfinished).is_file()


def test_purge_sweeps_stray_uploads_but_not_live_ones(store: SqlJobStore) -> None:
    live = create(store)
    stray = store.upload_path(new_job_id())
    stray.write_bytes(b"left by a crash between writing the upload and inserting its row")
    tmp = store.uploads_dir / f".tmp-{new_job_id()}"
    tmp.write_bytes(b"half-written")
    foreign = store.uploads_dir / "README"
    foreign.write_text("not ours")
    store.purge_expired(time.time())  # too recent to be sure: kept
    assert stray.exists()
    assert tmp.exists()
    store.purge_expired(time.time() + STRAY_UPLOAD_GRACE_S + 1)
    assert not stray.exists()
    assert not tmp.exists()
    assert foreign.exists()
    assert store.upload_path(live).exists()


def test_requeue_interrupted_after_a_crash(make_store: StoreFactory) -> None:
    crashed = make_store()
    job_id = create(crashed)
    cancelled_id = create(crashed)
    assert crashed.claim_next("dead-worker") is not None
    assert crashed.claim_next("dead-worker") is not None
    crashed.update_progress(job_id, 5.0, 50.0)
    crashed.request_cancel(cancelled_id)
    # The process dies here: nothing is closed. A new process opens the directory.
    store = make_store()
    assert store.requeue_interrupted() == [job_id]
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.QUEUED
    assert job.attempts == 1
    assert job.progress_done_s == 0.0
    cancelled = store.get(cancelled_id)
    assert cancelled is not None
    assert cancelled.state is JobState.CANCELLED  # its cancel was requested before the crash
    again = store.claim_next("new-worker")
    assert again is not None
    assert again.id == job_id
    assert again.attempts == 2
    assert store.requeue_interrupted() == [job_id]


def test_release_hands_a_job_back_without_counting_the_attempt(store: SqlJobStore) -> None:
    job_id = create(store)
    store.claim_next("w")
    assert store.release(job_id, worker_id="w")
    job = store.get(job_id)
    assert job is not None
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
    # A job asked to cancel is cancelled rather than handed back.
    store.claim_next("w")
    store.request_cancel(job_id)
    assert not store.release(job_id, worker_id="w")
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.CANCELLED


def test_poison_job_fails_after_max_attempts(make_store: StoreFactory) -> None:
    clock = FakeClock()
    store = make_store(max_attempts=3, clock=clock)
    poison = create(store, webhook_url="http://127.0.0.1:9/hook")
    clock.now += 1
    healthy = create(store)
    for attempt in (1, 2, 3):
        job = store.claim_next("w")
        assert job is not None
        assert (job.id, job.attempts) == (poison, attempt)
        store = make_store(max_attempts=3, clock=clock)  # the process died
        store.requeue_interrupted()
    # The fourth claim fails the poison job and moves on to the next one.
    job = store.claim_next("w")
    assert job is not None
    assert job.id == healthy
    failed = store.get(poison)
    assert failed is not None
    assert failed.state is JobState.FAILED
    assert failed.error_code == "job_crashed"
    assert "started 3 times" in (failed.error_message or "")
    assert failed.webhook_state is WebhookState.PENDING  # its client hears of it
    assert not store.upload_path(poison).exists()


@pytest.mark.parametrize(
    "bad",
    ["../etc/passwd", "a/b", "", "A" * 32, "0" * 31, "0" * 33, " " + "0" * 32, "0" * 31 + "\n"],
)
def test_malformed_ids_never_reach_a_query_or_a_path(store: SqlJobStore, bad: str) -> None:
    assert not is_valid_job_id(bad)
    assert store.get(bad) is None
    assert store.request_cancel(bad) is None
    assert store.delete(bad) is False
    with pytest.raises(ValueError, match="not a job id"):
        store.upload_path(bad)


def test_new_ids_are_valid_and_distinct() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_valid_job_id(i) for i in ids)
    assert not is_valid_job_id(None)


def test_counts_by_state(store: SqlJobStore) -> None:
    for _ in range(3):
        create(store)
    cancelled = create(store)
    store.request_cancel(cancelled)
    store.claim_next("w")
    counts = store.count_by_state()
    assert counts == {
        JobState.QUEUED: 2,
        JobState.RUNNING: 1,
        JobState.SUCCEEDED: 0,
        JobState.FAILED: 0,
        JobState.CANCELLED: 1,
    }
    assert store.queue_depth() == 2


def test_sqlite_uses_wal_with_full_sync(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path)
    assert (tmp_path / DB_NAME).is_file()
    with store._read() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_live_lease_keeps_a_job_and_an_expired_one_lets_another_worker_take_it(
    make_store: StoreFactory,
) -> None:
    clock = FakeClock()
    store = make_store(clock=clock, max_attempts=3)
    job_id = create(store)
    first = store.claim(job_id, "w1", lease_s=60)
    assert first is not None and first.worker_id == "w1" and first.attempts == 1
    # A redelivered message while w1's lease is live does nothing.
    assert store.claim(job_id, "w2", lease_s=60) is None
    clock.now += 50
    assert store.renew_lease(job_id, "w1", 60)
    clock.now += 50  # 100 s after the claim, but 50 s after the renewal
    assert store.claim(job_id, "w2", lease_s=60) is None
    clock.now += 11  # w1 stopped renewing: its lease ran out
    second = store.claim(job_id, "w2", lease_s=60)
    assert second is not None and second.worker_id == "w2" and second.attempts == 2
    # w1's late heartbeat and result are refused: the job is no longer its own.
    assert not store.renew_lease(job_id, "w1", 60)
    assert store.complete(job_id, make_transcript(), worker_id="w1") is None
    done = store.complete(job_id, make_transcript(), worker_id="w2")
    assert done is not None and done.state is JobState.SUCCEEDED and done.attempts == 2
    assert store.claim(job_id, "w3", lease_s=60) is None  # finished: nothing to take


def test_reaper_requeues_expired_leases_and_finds_lost_messages(make_store: StoreFactory) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    dead, alive, waiting = create(store), create(store), create(store)
    store.claim(dead, "w1", lease_s=60)
    store.claim(alive, "w2", lease_s=60)
    cancelled = create(store)
    store.claim(cancelled, "w1", lease_s=60)
    store.request_cancel(cancelled)
    clock.now += 45
    store.renew_lease(alive, "w2", 60)
    assert store.reap_expired() == []
    clock.now += 30
    assert store.reap_expired() == [dead]
    assert store.get(dead).state is JobState.QUEUED  # type: ignore[union-attr]
    assert store.get(alive).state is JobState.RUNNING  # type: ignore[union-attr]
    assert store.get(cancelled).state is JobState.CANCELLED  # type: ignore[union-attr]
    # The reaped job was handed to the queue just now; the one never claimed waited 75 s.
    assert store.stale_queued(60) == [waiting]
    assert store.stale_queued(60) == []  # once per period
    clock.now += 61
    assert sorted(store.stale_queued(60)) == sorted([dead, waiting])


def test_a_job_that_kills_its_workers_fails_after_max_attempts_with_leases(
    make_store: StoreFactory,
) -> None:
    clock = FakeClock()
    store = make_store(clock=clock, max_attempts=2)
    job_id = create(store)
    for worker in ("w1", "w2"):
        assert store.claim(job_id, worker, lease_s=10) is not None
        clock.now += 11  # the worker died mid-job
        assert store.reap_expired() == [job_id]
    assert store.claim(job_id, "w3", lease_s=10) is None
    failed = store.get(job_id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error_code == "job_crashed" and failed.attempts == 2
    assert "started 2 times" in (failed.error_message or "")
    assert not store.upload_path(job_id).exists()


def test_oldest_queued_at(make_store: StoreFactory) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    assert store.oldest_queued_at() is None
    first = create(store)
    clock.now += 5
    create(store)
    assert store.oldest_queued_at() == 1_000_000.0
    store.claim(first, "w", lease_s=60)
    assert store.oldest_queued_at() == 1_000_005.0


def test_sqlite_schema_1_is_migrated_in_place(tmp_path: Path) -> None:
    import sqlite3

    store = SQLiteJobStore(tmp_path)
    job_id = create(store)
    store.close()
    # Make it look like a database of the previous release.
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("ALTER TABLE jobs DROP COLUMN lease_expires_at")
    db.execute("ALTER TABLE jobs DROP COLUMN enqueued_at")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    migrated = SQLiteJobStore(tmp_path)
    assert migrated.claim(job_id, "w", lease_s=60) is not None
    migrated.close()


def test_postgres_store_works_on_a_sql_ascii_database(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    # initdb without a locale makes SQL_ASCII databases, where psycopg returns text as bytes
    # unless the connection asks for UTF-8 (found running the Compose stack).
    url = postgres_server.create_database("sql_ascii_jobs", encoding="SQL_ASCII")
    store = PostgresJobStore(url, upload_dir=tmp_path / "uploads")
    try:
        job = store.create(b"abc", filename="naïve.wav", model="m", options={"language": "en"})
        assert job.state is JobState.QUEUED
        again = store.get(job.id)
        assert again is not None
        assert again.filename == "naïve.wav"
        assert again.options == {"language": "en"}
    finally:
        store.close()


def test_postgres_store_serves_the_first_request_once_a_long_outage_ends(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    # The pool's reconnection backs off 1, 2, 4, 8, 16 s...: after 18 s of outage its next
    # attempt would come at 31 s, so without a bounded attempt the first request after the
    # restart timed out (an API replica in CI answered 503 for half a minute).
    url = postgres_server.create_database("outage_jobs")
    store = PostgresJobStore(url, upload_dir=tmp_path / "uploads", connect_timeout_s=2)
    try:
        job = store.create(b"abc", filename="a.wav", model="m", options={})
        postgres_server.stop()
        try:
            outage_ends = time.monotonic() + 18
            while time.monotonic() < outage_ends:
                with pytest.raises(JobStoreUnavailableError, match="database is unavailable"):
                    store.get(job.id)
        finally:
            postgres_server.start()
        back = store.get(job.id)
        assert back is not None
        assert back.state is JobState.QUEUED
    finally:
        store.close()
