"""Access tokens: issued as HS256 JWTs, checked on every Management API call (pure).

Tokens are signed with a key made per emulator instance, so they need no storage and stay
valid across `reset` (clients that cache a token keep working), but not across restarts.
They look like Auth0's (iss, sub `<client_id>@clients`, aud, iat, exp, scope, gty, azp) so
code that decodes them for `exp` works. Nobody else can verify them; that is not the point.

Bearer failures, as Auth0 words them: missing header → 401 "Missing authentication";
malformed → 401 "Invalid token"; bad signature → 401 "Invalid signature received for JSON Web
Token validation"; expired → 401 "Expired token received for JSON Web Token validation";
a token for another API → 401 "Invalid token" [inferred]; no needed scope → 403
"Insufficient scope, expected any of: <scope>" `insufficient_scope`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from grant_worker.emulator.errors import ApiError


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    client_id: str
    audience: str
    scopes: frozenset[str]
    expires_at_s: float  # epoch seconds


class TokenIssuer:
    """Signs and checks tokens. `clock` returns epoch seconds (injectable for tests)."""

    def __init__(self, key: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._key = key or secrets.token_bytes(32)
        self._clock = clock
        self._header = _b64(
            json.dumps(
                {"alg": "HS256", "typ": "JWT", "kid": "emulator"}, separators=(",", ":")
            ).encode()
        )

    def rotate_key(self) -> None:
        """Sign with a new key: every token issued before is refused from now on."""
        self._key = secrets.token_bytes(32)

    def issue(
        self,
        *,
        client_id: str,
        audience: str,
        scopes: Iterable[str],
        lifetime_s: float,
        issuer: str,
    ) -> str:
        """A token for `client_id` on `audience`, valid for `lifetime_s` seconds from now."""
        now = self._clock()
        payload = {
            "iss": issuer,
            "sub": f"{client_id}@clients",
            "aud": audience,
            "iat": int(now),
            # Not rounded (RFC 7519 allows fractions): a 1 s lifetime must last 1 s, and a
            # 0 s one must be expired at once.
            "exp": now + lifetime_s,
            "scope": " ".join(scopes),
            "gty": "client-credentials",
            "azp": client_id,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{self._header}.{body}.{self._sign(self._header + '.' + body)}"

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest())

    def verify(self, token: str, invalid_token_code: str | None = None) -> Claims:
        """Check signature and expiry. Raises ApiError 401."""
        parts = token.split(".")
        if len(parts) != 3:
            raise ApiError(401, "Invalid token", invalid_token_code)
        header, body, signature = parts
        if not hmac.compare_digest(self._sign(f"{header}.{body}"), signature):
            raise ApiError(
                401, "Invalid signature received for JSON Web Token validation", invalid_token_code
            )
        payload = json.loads(_unb64(body))
        if self._clock() >= payload["exp"]:
            raise ApiError(
                401, "Expired token received for JSON Web Token validation", invalid_token_code
            )
        return Claims(
            client_id=payload["azp"],
            audience=payload["aud"],
            scopes=frozenset(payload["scope"].split()),
            expires_at_s=payload["exp"],
        )

    def authorize(
        self,
        authorization: str | None,
        needed_scope: str | tuple[str, ...],
        audience_ok: Callable[[str], bool],
        invalid_token_code: str | None = None,
    ) -> Claims:
        """Check an `Authorization` header for a Management API call needing `needed_scope`
        (or any one of several, as for `read:clients` / `read:client_keys`); `audience_ok`
        says whether the token's audience is this Management API.

        Raises ApiError 401 (missing, malformed, forged, expired, other API) or 403.
        """
        if not authorization:
            raise ApiError(401, "Missing authentication", invalid_token_code)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Invalid token", invalid_token_code)
        claims = self.verify(token.strip(), invalid_token_code)
        if not audience_ok(claims.audience):
            raise ApiError(401, "Invalid token", invalid_token_code)
        needed = (needed_scope,) if isinstance(needed_scope, str) else needed_scope
        if not claims.scopes.intersection(needed):
            raise ApiError(
                403,
                f"Insufficient scope, expected any of: {','.join(needed)}",
                "insufficient_scope",
            )
        return claims
