"""The house's layout as the design promises it: a producer's import loads nothing of the
worker process, the CLI or the dashboard, and `worker/` shows its roles as folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grant_worker.worker as worker_package

WORKER_DIR = Path(worker_package.__file__).parent

# What a producer must never pay for: the worker's process, the CLI, the dashboard, and the
# libraries only they use.
FORBIDDEN_FOR_PRODUCERS = (
    "grant_worker.worker.process",
    "grant_worker.worker.cli",
    "grant_worker.worker.dashboard",
    "grant_worker.emulator",
    "click",
    "rich",
    "starlette",
    "uvicorn",
    "aiohttp",
)


def _modules_after(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_a_producers_import_loads_nothing_of_the_worker_cli_or_dashboard() -> None:
    loaded = _modules_after("from grant_worker import GrantClient, Settings\nGrantClient, Settings")
    offending = [
        name
        for name in loaded
        if any(name == root or name.startswith(root + ".") for root in FORBIDDEN_FOR_PRODUCERS)
    ]
    assert offending == []
    assert "grant_worker.worker.client.grant_client" in loaded


def test_worker_holds_at_most_eight_modules_and_one_folder_per_role() -> None:
    modules = sorted(path.name for path in WORKER_DIR.glob("*.py"))
    assert len(modules) <= 8, modules
    folders = {path.name for path in WORKER_DIR.iterdir() if (path / "__init__.py").exists()}
    assert {"process", "client", "cli", "dashboard"} <= folders
