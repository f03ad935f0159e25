"""The image's HEALTHCHECK: GET /health of whichever asrserve process is PID 1.

`asrserve serve` answers on ASRSERVE_PORT (8000), `asrserve worker` on ASRSERVE_WORKER_PORT (9464),
both at ASRSERVE_HOST (loopback when that is every interface); a `--port N` on the command line
wins, as it does in the process. The process, not the port, is
asked: with host networking several containers share one network namespace, and another
container's port must not make this one look healthy. Standard library only: it runs every few
seconds.
"""

import os
import sys
import urllib.request
from pathlib import Path


def main() -> int:
    argv = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    args = [a.decode(errors="replace") for a in argv if a]
    worker = "worker" in args
    port = os.environ.get("ASRSERVE_WORKER_PORT" if worker else "ASRSERVE_PORT")
    port = port or ("9464" if worker else "8000")
    for i, arg in enumerate(args):
        if arg == "--port" and i + 1 < len(args):
            port = args[i + 1]
        elif arg.startswith("--port="):
            port = arg.split("=", 1)[1]
    tls = os.environ.get("ASRSERVE_TLS_CERTFILE") or os.environ.get("ASRSERVE_TLS_SELF_SIGNED", "")
    scheme = "https" if tls and tls.lower() not in ("0", "false") and not worker else "http"
    host = os.environ.get("ASRSERVE_HOST", "")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/health"
    try:
        context = None
        if scheme == "https":
            import ssl

            context = ssl._create_unverified_context()  # our own certificate, on loopback
        with urllib.request.urlopen(url, timeout=4, context=context) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        sys.stderr.write(f"{url}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
