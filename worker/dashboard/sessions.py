"""Dashboard sessions kept server-side, in Redis, so that they can be ended.

The cookie carries only a random session id (signed by Starlette's SessionMiddleware). What the
session holds lives under `Keys.dashboard_session(id)`: when it was opened, a fingerprint of the
dashboard token it was opened with, its CSRF token and the last notice. A session ends when:

- the operator logs out (the hash is deleted: a copy of the cookie reads nothing afterwards);
- it is idle for `idle_s` (the hash expires; every request renews it);
- it is older than `SESSION_MAX_AGE_S`, however busy (checked against `created_s`);
- the dashboard token changes (the fingerprint no longer matches).

Login attempts are counted per client address and overall over a window, before the token is
compared, so that guessing in parallel is as slow as guessing in series.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import cast

import redis

from grant_worker.tasks.keys import Keys

SESSION_MAX_AGE_S = 12 * 3600
LOGIN_WINDOW_S = 60
# Login attempts allowed per window: per client address, and from everywhere together.
FAILURES_PER_CLIENT = 5
FAILURES_OVERALL = 20
# A notice is one line for people; a long one (hundreds of ids) is cut here, never stored whole.
NOTICE_MAX_CHARS = 400


def fingerprint(token: str) -> str:
    """Which token a session was opened with, without keeping the token."""
    return hashlib.sha256(b"grants-dashboard-session:" + token.encode()).hexdigest()[:32]


@dataclass
class Session:
    session_id: str
    csrf: str


class SessionStore:
    def __init__(self, client: redis.Redis, keys: Keys, *, idle_s: int) -> None:
        self._redis = client
        self._keys = keys
        self._idle_s = idle_s

    def open(self, token: str) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        key = self._keys.dashboard_session(session.session_id)
        pipe = self._redis.pipeline()
        pipe.hset(
            key,
            mapping={"created_s": str(time.time()), "token": fingerprint(token),
                     "csrf": session.csrf},
        )  # fmt: skip
        pipe.expire(key, self._idle_s)
        pipe.execute()
        return session

    def current(self, session_id: object, token: str) -> Session | None:
        """The live session `session_id` (its idle time renewed), or None when it ended."""
        if not isinstance(session_id, str) or not session_id:
            return None
        key = self._keys.dashboard_session(session_id)
        pipe = self._redis.pipeline()
        pipe.hgetall(key)
        pipe.expire(key, self._idle_s)
        fields = cast(dict[bytes | str, bytes | str], pipe.execute()[0])
        data = {_text(k): _text(v) for k, v in fields.items()}
        try:
            created = float(data.get("created_s", ""))
        except ValueError:
            created = 0.0
        same_token = hmac.compare_digest(data.get("token", ""), fingerprint(token))
        if not same_token or time.time() - created > SESSION_MAX_AGE_S or not data.get("csrf"):
            self.end(session_id)
            return None
        return Session(session_id, data["csrf"])

    def end(self, session_id: object) -> None:
        if isinstance(session_id, str) and session_id:
            self._redis.delete(self._keys.dashboard_session(session_id))

    def set_notice(self, session_id: str, notice: str) -> None:
        if len(notice) > NOTICE_MAX_CHARS:
            notice = notice[: NOTICE_MAX_CHARS - 1] + "…"
        self._redis.hset(self._keys.dashboard_session(session_id), "notice", notice)

    def pop_notice(self, session_id: str) -> str | None:
        key = self._keys.dashboard_session(session_id)
        pipe = self._redis.pipeline()
        pipe.hget(key, "notice")
        pipe.hdel(key, "notice")
        notice = pipe.execute()[0]
        return _text(notice) if notice is not None else None

    # -- login throttling -----------------------------------------------------------------------

    def login_allowed(self, who: str) -> bool:
        """Count one login attempt of `who`; False once `who`, or everyone together, has used
        up the window's attempts. Counted before the token is compared, in one step, so that
        parallel guesses cannot all pass a check made before any of them was counted."""
        pipe = self._redis.pipeline()
        for name in (who, "*"):
            key = self._keys.dashboard_login_failures(name)
            pipe.incr(key)
            pipe.expire(key, LOGIN_WINDOW_S, nx=True)
        mine, _, everyone, _ = pipe.execute()
        return int(mine) <= FAILURES_PER_CLIENT and int(everyone) <= FAILURES_OVERALL

    def forget_attempts(self, who: str) -> None:
        """A right token: the client's own attempts start again (the overall count stays)."""
        self._redis.delete(self._keys.dashboard_login_failures(who))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
