"""Test helpers shipped with the product: run a real worker process against given settings.

    with WorkerProcess(settings) as worker:
        ...            # the worker consumes GRANTS_QUEUE until the block ends
    worker.kill()      # SIGKILL, as a crash

Used by this project's own tests and usable by anyone testing a pipeline built on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from grant_worker.config.settings import Settings

READY_MARK = b"ready."


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce `settings` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    return env


class WorkerProcess:
    """`grants worker` in a child process, with its output in a log file."""

    def __init__(
        self,
        settings: Settings,
        *,
        hostname: str | None = None,
        extra_env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        loglevel: str = "INFO",
    ) -> None:
        self.settings = settings
        self.hostname = hostname
        self.extra_env = extra_env or {}
        self.loglevel = loglevel
        directory = log_dir or Path(tempfile.mkdtemp(prefix="grants-worker-"))
        self.log_path = directory / f"{hostname or 'worker'}-{os.getpid()}-{time.time_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_timeout_s: float = 30.0) -> WorkerProcess:
        """Start the worker and return once it consumes; raises `RuntimeError` otherwise."""
        env = {**os.environ, **settings_env(self.settings), **self.extra_env}
        command = [
            sys.executable,
            "-m",
            "grant_worker.worker",
            "worker",
            "--loglevel",
            self.loglevel,
        ]
        if self.hostname:
            command.append(f"--hostname={self.hostname}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(ready_timeout_s)
        return self

    def wait_ready(self, timeout_s: float, *, after_offset: int = 0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if READY_MARK in self.log_path.read_bytes()[after_offset:]:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"worker not ready after {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to acknowledge or clean up."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """SIGTERM (warm shutdown: finish what is in hand), then SIGKILL after `timeout_s`."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> WorkerProcess:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
