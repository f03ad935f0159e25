"""The job vocabulary shared by the HTTP API and the job machinery: records, states, errors.

`asrserve.api` and `asrserve.jobs` are independent siblings; both speak of jobs in these terms,
and the composition root (`asrserve.runtime`) hands the API a `JobService` from `asrserve.jobs`.
"""

from __future__ import annotations

from asrserve.jobmodel.errors import (
    InvalidCursorError,
    InvalidWebhookUrlError,
    JobError,
    JobNotFinishedError,
    JobNotFoundError,
    JobResultUnavailableError,
    JobStoreUnavailableError,
)
from asrserve.jobmodel.records import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Job,
    JobPage,
    JobState,
    WebhookState,
    is_valid_job_id,
    new_job_id,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "InvalidCursorError",
    "InvalidWebhookUrlError",
    "Job",
    "JobError",
    "JobNotFinishedError",
    "JobNotFoundError",
    "JobPage",
    "JobResultUnavailableError",
    "JobState",
    "JobStoreUnavailableError",
    "WebhookState",
    "is_valid_job_id",
    "new_job_id",
]
