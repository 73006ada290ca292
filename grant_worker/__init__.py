"""grant-worker: provisions Auth0 client grants from a Redis queue.

The one import name the project claims. Its parts live at the top of the repository and are
mapped here (`grant_worker.config` → `config/`, `grant_worker.tasks` → `tasks/`,
`grant_worker.worker` → `worker/`, `grant_worker.emulator` → `emulator/`), so an application
that has its own `config` package or `tasks.py` never meets ours.

    from grant_worker import GrantClient, Settings
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grant_worker.config.settings import Settings
    from grant_worker.worker.client import GrantClient

try:
    __version__ = version("grant-worker")
except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
    __version__ = "0+unknown"

__all__ = ["GrantClient", "Settings", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import grant_worker` must stay cheap and free of Celery.
    if name == "GrantClient":
        from grant_worker.worker.client import GrantClient

        return GrantClient
    if name == "Settings":
        from grant_worker.config.settings import Settings

        return Settings
    raise AttributeError(f"module 'grant_worker' has no attribute {name!r}")
