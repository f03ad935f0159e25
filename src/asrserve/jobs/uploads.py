"""The uploads of jobs: one file per job id in a directory, written so that a crash loses nothing.

`write` copies to a temporary file, fsyncs it, renames it into place and fsyncs the directory:
once it returns, the file survives a killed process, so a store that inserts its row after it
never names an upload that is not on disk. Files that lost their row (a crash between the two)
are removed by `sweep` once they are old enough that no write can still be inserting them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from asrserve.engine import AudioTooLargeError, EmptyAudioError
from asrserve.jobmodel.records import is_valid_job_id
from asrserve.jobs.store import Upload

log = logging.getLogger(__name__)

STRAY_UPLOAD_GRACE_S = 3600.0
"""An upload file without a live job is removed only when older than this, so that a `create`
between writing its file and inserting its row is never swept."""
_COPY_CHUNK = 1 << 20
_TMP_PREFIX = ".tmp-"


def _human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once the directory entry is: fsync the directory itself.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UploadDir:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        if not is_valid_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.directory / job_id

    def write(self, job_id: str, upload: Upload, max_bytes: int | None) -> int:
        """Stores the upload durably and returns its size; refuses empty or oversized ones."""
        final = self.path(job_id)
        tmp = self.directory / f"{_TMP_PREFIX}{job_id}"
        with contextlib.ExitStack() as stack:
            if isinstance(upload, bytes):
                source: BinaryIO = io.BytesIO(upload)
            elif isinstance(upload, Path):
                source = stack.enter_context(upload.open("rb"))
            else:
                source = upload
            try:
                size = 0
                with tmp.open("xb") as out:
                    while chunk := source.read(_COPY_CHUNK):
                        size += len(chunk)
                        if max_bytes is not None and size > max_bytes:
                            raise AudioTooLargeError(
                                f"The upload is larger than the {_human_bytes(max_bytes)} "
                                "allowed; send a shorter or more compressed file."
                            )
                        out.write(chunk)
                    if size == 0:
                        raise EmptyAudioError("The upload is empty: send an audio file.")
                    out.flush()
                    os.fsync(out.fileno())
                tmp.replace(final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        _fsync_dir(self.directory)
        return size

    def remove(self, job_id: str) -> None:
        try:
            self.path(job_id).unlink(missing_ok=True)
        except OSError:
            # The row is already final; the next sweep removes the file.
            log.warning("could not remove upload", exc_info=True, extra={"job_id": job_id})

    def sweep(self, now: float, is_owned: Callable[[str], bool]) -> None:
        """Removes files older than the grace period that no unfinished job owns: half-written
        temporaries, and uploads whose job finished or is gone. Other files are not ours."""
        for path in self.directory.iterdir():
            try:
                if path.stat().st_mtime > now - STRAY_UPLOAD_GRACE_S:
                    continue
            except FileNotFoundError:
                continue
            name = path.name
            if name.startswith(_TMP_PREFIX):
                stray = True
            elif is_valid_job_id(name):
                stray = not is_owned(name)
            else:
                stray = False
            if stray:
                log.warning("removing stray upload", extra={"file": name})
                path.unlink(missing_ok=True)
