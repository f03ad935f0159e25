"""The layers of DESIGN.md, enforced: the import-linter contracts in pyproject.toml must hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint_imports), "--config", str(REPO / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
    assert "The engine is a library" in proc.stdout


def test_the_engine_does_not_import_the_cli_or_settings_at_runtime() -> None:
    # The contract is static; this checks what importing the engine really loads.
    code = (
        "import sys, asrserve.engine.pipeline, asrserve.engine.registry, asrserve.engine.formats;"
        "bad = [m for m in sys.modules if m.startswith(('asrserve.cli', 'asrserve.config',"
        " 'typer', 'rich', 'pydantic_settings'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_job_worker_starts_without_the_web_framework_or_the_websocket_server() -> None:
    code = (
        "import sys, asrserve.cli.main, asrserve.runtime.worker;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn')"
        " or m.startswith(('asrserve.ws.server', 'asrserve.ws.protocol', 'asrserve.api.app'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
