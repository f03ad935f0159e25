"""A scaled-out asrserve on one machine: API processes and workers on one PostgreSQL database
and one Redis broker, all real processes on loopback, for the end-to-end fault tests to kill
and restart and for the jobs benchmark (bench/jobs.py) to measure."""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from asrserve.evaluation.processes import (
    ServerProcess,
    WorkerProcess,
    start_server,
    start_worker,
)
from asrserve.evaluation.services import RedisServer

FAST_RECOVERY = {
    # A dead worker's job is queued again within ~6 s, a lost message sent again after 10 s.
    # The heartbeat renews every 2 s, so only a 4 s stall of a live worker could lose a lease.
    "job_lease_s": "6",
    "job_resend_after_s": "10",
    "job_max_attempts": "3",
}


@dataclass
class Cluster:
    tmp: Path
    redis: RedisServer
    settings: dict[str, str]
    apis: list[ServerProcess] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)
    restarts: int = 0
    """Workers the supervisor started again after they exited on their own."""
    _names: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    @classmethod
    def start(
        cls, tmp: Path, database_url: str, *, apis: int = 2, workers: int = 2, **settings: str
    ) -> Cluster:
        redis = RedisServer(tmp / "redis").start()
        common = {
            "job_store": database_url,
            "job_queue": redis.url,
            "upload_dir": str(tmp / "shared-uploads"),
            **FAST_RECOVERY,
            **settings,
        }
        cluster = cls(tmp, redis, common)
        try:
            for _ in range(workers):
                cluster.add_worker()
            for _ in range(apis):
                cluster.add_api()
        except BaseException:
            cluster.stop()
            raise
        cluster._supervisor = threading.Thread(target=cluster._supervise, daemon=True)
        cluster._supervisor.start()
        return cluster

    def _supervise(self) -> None:
        """What Kubernetes or Compose's `restart: always` does: a worker process that exited
        without the test stopping it is replaced by a fresh one."""
        while not self._stopping.wait(0.5):
            with self._lock:
                exited = [w for w in self.workers if w.proc.poll() is not None]
                for worker in exited:
                    self.workers.remove(worker)
            for _ in exited:
                self.add_worker()
                self.restarts += 1

    def remove_worker(self, worker: WorkerProcess) -> WorkerProcess:
        """Take a worker out of supervision, for the test to kill or stop it."""
        with self._lock:
            self.workers.remove(worker)
        return worker

    def _name(self, kind: str) -> str:
        self._names += 1
        return f"{kind}{self._names}"

    def add_worker(self, **settings: str) -> WorkerProcess:
        with self._lock:
            name = self._name("worker")
        worker = start_worker(self.tmp, name=name, **{**self.settings, **settings})
        with self._lock:
            self.workers.append(worker)
        return worker

    def add_api(self, **settings: str) -> ServerProcess:
        api = start_server(self.tmp, name=self._name("api"), **{**self.settings, **settings})
        self.apis.append(api)
        return api

    @property
    def logs(self) -> str:
        return "\n".join(p.log for p in [*self.apis, *self.workers])

    def worker_logs(self) -> list[str]:
        """The logs of every worker process this cluster ever started, stopped ones included."""
        return [path.read_text(errors="replace") for path in sorted(self.tmp.glob("worker*.log"))]

    def worker_running(self, job_id: str) -> WorkerProcess:
        """The live worker process that logged the latest start of this job."""
        for worker in self.workers:
            if worker.proc.poll() is None and started(worker.log, job_id) > finished(
                worker.log, job_id
            ):
                return worker
        raise AssertionError(f"no live worker is running job {job_id}")

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(30)
        for process in [*self.apis, *self.workers]:
            if process.proc.poll() is None:
                process.stop(signal.SIGTERM, timeout=60)
        self.redis.stop()


def _events(log: str, message: str, job_id: str) -> int:
    count = 0
    for line in log.splitlines():
        if line.startswith("{") and f'"job_id": "{job_id}"' in line:
            count += json.loads(line).get("message") == message
    return count


def started(log: str, job_id: str) -> int:
    """How many times this log says the job started."""
    return _events(log, "job started", job_id)


def finished(log: str, job_id: str) -> int:
    """How many times this log says the job ran to its end (succeeded, failed or cancelled)."""
    return _events(log, "job finished", job_id)


def submit(api: ServerProcess, path: Path, **fields: str) -> dict[str, Any]:
    with path.open("rb") as fh:
        response = httpx.post(f"{api.url}/v1/jobs", files={"file": fh}, data=fields, timeout=60)
    assert response.status_code == 202, response.text
    return dict(response.json())


def job(api: ServerProcess, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api.url}/v1/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_finished(
    api: ServerProcess, job_ids: list[str], timeout_s: float = 600
) -> dict[str, dict[str, Any]]:
    """Poll until every job is finished; returns them by id."""
    finished: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(finished) < len(job_ids):
        for job_id in job_ids:
            if job_id not in finished:
                current = job(api, job_id)
                if current["status"] in ("succeeded", "failed", "cancelled"):
                    finished[job_id] = current
        if time.monotonic() > deadline:
            left = [j for j in job_ids if j not in finished]
            raise AssertionError(f"{len(left)} jobs never finished, e.g. {job(api, left[0])}")
        time.sleep(0.2)
    return finished


def wait_until_running(api: ServerProcess, job_id: str, timeout_s: float = 300) -> dict[str, Any]:
    """Until the job runs and has reported progress (its worker is mid-decode)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = job(api, job_id)
        if current["status"] == "running" and current["progress"]["done_seconds"] > 0:
            return current
        assert current["status"] in ("queued", "running"), current
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never ran: {job(api, job_id)}")
