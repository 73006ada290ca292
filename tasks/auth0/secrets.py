"""The worker's own credentials, from settings or from mounted secret files, reloadable.

Docker and Kubernetes mount secrets as files (`AUTH0_CLIENT_SECRET_FILE`, `AUTH0_TOKEN_FILE`);
rotating one rewrites the file. `Credentials` holds what the worker uses now and is shared by
every copy of the Management API client of a process, so `reload()` (run by the breaker's
probe, and by every process when the breaker closes) switches them all at once.
`FileWatch` notices a rewritten file, so that the probe runs at once instead of at its next
interval. Secrets stay `SecretStr`: neither a repr nor an error message shows one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from grant_worker.config.settings import Settings


class SecretFileError(ValueError):
    """Raised when a secret file cannot be read or is empty; names the setting, not the value."""


def read_secret_file(path: str, setting: str) -> SecretStr:
    """The file's content without surrounding white space (a trailing newline is usual).

    Raises `SecretFileError` naming `setting` when the file is missing, unreadable or empty.
    """
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretFileError(f"{setting}: cannot read {path!r} ({exc.strerror})") from None
    if not text:
        raise SecretFileError(f"{setting}: {path!r} is empty")
    return SecretStr(text)


@dataclass(frozen=True)
class Secrets:
    """One reading of the configured secrets: a static token, or a client secret (or neither)."""

    token: SecretStr | None
    client_secret: SecretStr | None


def load_secrets(settings: Settings) -> Secrets:
    """The secrets as configured now: a file wins over the plain variable of the same secret.

    Raises `SecretFileError` when a configured file cannot be read.
    """
    token = settings.auth0_token
    if settings.auth0_token_file:
        token = read_secret_file(settings.auth0_token_file, "AUTH0_TOKEN_FILE")
    secret = settings.auth0_client_secret
    if settings.auth0_client_secret_file:
        secret = read_secret_file(settings.auth0_client_secret_file, "AUTH0_CLIENT_SECRET_FILE")
    return Secrets(token=token, client_secret=secret)


class Credentials:
    """The secrets a process uses now; thread-safe, shared, replaced by `reload`."""

    def __init__(self, settings: Settings, secrets: Secrets | None = None) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._secrets = secrets if secrets is not None else load_secrets(settings)

    @property
    def current(self) -> Secrets:
        with self._lock:
            return self._secrets

    def reload(self) -> bool:
        """Read the secret files again; True when something changed.

        Raises `SecretFileError` (keeping the old secrets) when a file cannot be read.
        """
        fresh = load_secrets(self._settings)
        with self._lock:
            changed = _fingerprint(fresh) != _fingerprint(self._secrets)
            self._secrets = fresh
        return changed

    def __repr__(self) -> str:
        return "Credentials(**********)"


def _fingerprint(secrets: Secrets) -> tuple[str, str]:
    def digest(value: SecretStr | None) -> str:
        if value is None:
            return ""
        return hashlib.sha256(value.get_secret_value().encode()).hexdigest()

    return digest(secrets.token), digest(secrets.client_secret)


class FileWatch:
    """Notices when any of some files is rewritten (size, mtime or inode change)."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = [p for p in paths if p]
        self._last = self._stamp()

    def _stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self._paths:
            try:
                st = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def changed(self) -> bool:
        """True once after each change seen since the last call."""
        if not self._paths:
            return False
        stamp = self._stamp()
        if stamp == self._last:
            return False
        self._last = stamp
        return True


def watched_files(settings: Settings) -> list[str]:
    return [p for p in (settings.auth0_client_secret_file, settings.auth0_token_file) if p]
