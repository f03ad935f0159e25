"""Real Redis and PostgreSQL servers on loopback ports in temporary directories, for the tests
and the benchmarks (bench/jobs.py).

The Debian packages are installed by `scripts/install_services.sh` (run by `make test`). Each
server runs as a child of the process that starts it; tests may stop, kill and restart it to
prove that nothing is lost when it goes away.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from asrserve.evaluation.processes import free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _wait_port(port: int, timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s} s\n{detail}")


class RedisServer:
    """`redis-server` with AOF on (every write fsynced each second), as DEPLOY-NOTES says."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run scripts/install_services.sh")
        log = self.directory / "redis.log"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 20, "redis-server", log)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


class PostgresServer:
    """A PostgreSQL cluster made with initdb in a temporary directory, run by the `postgres`
    user when the tests run as root (the server refuses root), listening on loopback only.

    The directory is its own (not pytest's tmp_path, which only root may enter), and is removed
    by `remove`."""

    def __init__(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="asrserve-pg-"))
        self.directory = directory
        self.data = directory / "pgdata"
        self.port = free_port()
        self.log = directory / "postgres.log"
        if not PG_BIN_DIRS:
            raise RuntimeError("PostgreSQL is missing: run scripts/install_services.sh")
        self.bin = PG_BIN_DIRS[0]
        self._as: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # the Debian package creates this user
            shutil.chown(directory, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://asrserve:asrserve@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as, *args], capture_output=True, text=True, check=check, timeout=120
        )

    def start(self) -> PostgresServer:
        if not (self.data / "PG_VERSION").exists():
            pwfile = self.directory / "pw"
            pwfile.write_text("asrserve\n")
            if self._as:
                shutil.chown(pwfile, "postgres")
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "asrserve",
                f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", "60", "-o",
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories="
            f"{self.directory} -c fsync=on -c max_connections=200",
            "start",
        )  # fmt: skip
        _wait_port(self.port, 30, "postgres", self.log)
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
            check=False,
        )  # fmt: skip

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def create_database(self, name: str, encoding: str | None = None) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            if encoding:
                conn.execute(f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' TEMPLATE template0")
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
