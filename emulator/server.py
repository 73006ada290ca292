"""Serving the app: in the foreground (the CLI) or on a background thread (tests, demos)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable

from aiohttp import web
from aiohttp.log import access_logger

from grant_worker.emulator.app import make_app
from grant_worker.emulator.state import Emulator

# Enough for hundreds of clients connecting at once without SYN retries (capped by somaxconn).
BACKLOG = 2048
# How long a stop waits for requests in progress (a hang fault may never finish by itself).
SHUTDOWN_TIMEOUT_S = 1.0


async def start_app(
    app: web.Application, host: str, port: int, *, access_log: bool = False
) -> tuple[web.AppRunner, int]:
    """Serve any aiohttp `app` the way the emulator is served (the benchmark's baseline uses
    this too). Port 0 = any free port. Returns the runner and the bound port.

    Raises OSError if the address cannot be bound.
    """
    runner = web.AppRunner(
        app,
        access_log=access_logger if access_log else None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=BACKLOG)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port: int = runner.addresses[0][1]
    return runner, bound_port


async def start(
    emulator: Emulator, host: str, port: int, *, access_log: bool = False
) -> tuple[web.AppRunner, int]:
    """Start serving `emulator` on host:port. Raises OSError if it cannot bind."""
    return await start_app(make_app(emulator), host, port, access_log=access_log)


def serve_forever(
    emulator: Emulator, host: str, port: int, *, access_log: bool, on_ready: Callable[[int], None]
) -> None:
    """Serve until SIGINT/SIGTERM; `on_ready(port)` is called once listening.

    Raises OSError if the address cannot be bound.
    """

    async def main() -> None:
        runner, bound_port = await start(emulator, host, port, access_log=access_log)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        on_ready(bound_port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


class BackgroundServer:
    """The emulator on its own thread and event loop; `start()` returns once it listens."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="auth0-emulator", daemon=True
        )
        self._runner: web.AppRunner | None = None

    def start(self) -> int:
        """Start listening; returns the bound port. Raises OSError if it cannot bind."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start(self.emulator, self.host, self.port), self._loop
        )
        try:
            self._runner, self.port = future.result(timeout=30)
        except BaseException:
            self._stop_loop()
            raise
        return self.port

    def stop(self) -> None:
        """Stop serving (requests in progress get SHUTDOWN_TIMEOUT_S) and end the thread."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=30)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
