"""Jobs on Celery workers through a Redis broker: the Celery app and the API side's `JobQueue`.

A message carries only the job id; the job itself is in the shared store. Celery is configured
the way DEPLOY-NOTES found it must be for long jobs on Redis:

- `acks_late` with prefetch disabled (one message reserved per free worker thread), so a
  message is acknowledged only after its job finished or was handed back, and
  `task_reject_on_worker_lost` so a killed pool child's message is redelivered;
- a visibility timeout above the longest allowed job (`max_job_s`), so Redis does not deliver
  a running job's message to a second worker; a dead worker's job is found sooner by its
  lease in the store (see `asrserve.jobs.worker`), not by this timeout;
- no result backend: results, progress and errors live in the store.

Sending never loses a job: `create` made it durable before `submit`, and a message that cannot
be sent (the broker down) is sent again by the workers' reaper once the job has waited longer
than `resend_after_s`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Celery

from asrserve.jobmodel.records import Job
from asrserve.jobs.options import JobOptions

log = logging.getLogger(__name__)

TASK_NAME = "asrserve.run_job"
QUEUE_WAIT_MARGIN_S = 3600.0
"""Added to `max_job_s` for the visibility timeout: with prefetch off a message is reserved
only by a free worker, so the margin covers the start-up of a job, not its wait in the queue."""


def visibility_timeout_s(options: JobOptions) -> float:
    return options.max_job_s + QUEUE_WAIT_MARGIN_S


def make_celery(options: JobOptions) -> Celery:
    """The Celery app of API processes and workers alike (tasks are registered by workers)."""
    app = Celery("asrserve", broker=options.queue, set_as_current=False)
    app.conf.update(
        task_default_queue=options.queue_name,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for the broker, however long
        broker_connection_timeout=3.0,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s(options),
            "socket_timeout": 5.0,
            "socket_connect_timeout": 3.0,
            "retry_on_timeout": True,
            "health_check_interval": 10,
        },
        # An API request must not hang on a broker that is down: a few quick tries, then the
        # reaper sends the message later.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.1,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )
    return app


class CeleryJobQueue:
    """`JobQueue` for processes that only submit (API replicas): `submit` sends the job id.

    `start`, `stop` and `wake` have nothing to do here: workers are other processes, and
    cancellation goes through the store.
    """

    def __init__(
        self,
        app: Celery,
        options: JobOptions,
        *,
        on_send_failed: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.queue_name = options.queue_name
        self.on_send_failed = on_send_failed

    def start(self) -> None:
        return None

    def submit(self, job: Job) -> None:
        self.send(job.id)

    def send(self, job_id: str) -> bool:
        """Send the job's message; False (logged) when the broker cannot take it now."""
        try:
            self.app.send_task(TASK_NAME, args=[job_id], queue=self.queue_name)
        except Exception as exc:
            # The job is durable in the store; the reaper sends it again later.
            log.warning(
                "could not send the job to the broker; it will be sent again",
                extra={"job_id": job_id, "error": str(exc)},
            )
            if self.on_send_failed is not None:
                self.on_send_failed(job_id)
            return False
        return True

    def wake(self) -> None:
        return None

    def stop(self, deadline_s: float) -> None:
        self.app.close()
