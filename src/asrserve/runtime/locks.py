"""One embedded job runner per data directory, enforced by an advisory file lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "asrserve.lock"


class DataDirLockedError(RuntimeError):
    """Another process runs the embedded job runner on this data directory."""


class DataDirLock:
    """`flock` on `data_dir/asrserve.lock`, held for the life of the process. The kernel drops
    it when the process dies, however it dies, so a crash never leaves a stale lock."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataDirLockedError(
                f"{self.path.parent} is in use by {holder}: one asrserve server runs the embedded "
                "job runner per data directory. Stop it, give this one another "
                "ASRSERVE_DATA_DIR, or scale out with ASRSERVE_JOB_STORE=postgresql://… and "
                "ASRSERVE_JOB_QUEUE=redis://…."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
