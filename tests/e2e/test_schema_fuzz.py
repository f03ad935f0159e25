"""schemathesis generates requests from the live OpenAPI schema: none may produce a 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from asrserve.evaluation.processes import ServerProcess


def test_no_server_errors_on_generated_requests(server: ServerProcess, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    proc = subprocess.run(
        [
            str(schemathesis), "run", f"{server.url}/openapi.json",
            "--checks", "not_a_server_error",
            "--max-examples", "25",
            "--workers", "1",
            "--request-timeout", "120",
            "--seed", "20261121",
            "--report", "junit", "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts, output[-3000:]
    generated, passed = map(int, counts.groups())
    assert generated == passed > 100
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) >= 9, "every operation was exercised"
    # The server stayed healthy throughout.
    assert server.proc.poll() is None
