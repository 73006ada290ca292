"""Issuing and checking access tokens with a fake clock (pure)."""

from __future__ import annotations

import base64
import json

import pytest

from grant_worker.emulator.errors import ApiError
from grant_worker.emulator.tokens import TokenIssuer

AUD = "https://127.0.0.1:8787/api/v2/"
SCOPES = ["create:client_grants", "read:client_grants"]


class Clock:
    now = 1_800_000_000.25

    def __call__(self) -> float:
        return self.now


def issued(lifetime_s: float = 60) -> tuple[TokenIssuer, Clock, str]:
    clock = Clock()
    issuer = TokenIssuer(clock=clock)
    token = issuer.issue(
        client_id="w",
        audience=AUD,
        scopes=SCOPES,
        lifetime_s=lifetime_s,
        issuer="http://127.0.0.1:8787/",
    )
    return issuer, clock, token


def authorize(issuer: TokenIssuer, header: str | None, scope: str = "read:client_grants") -> None:
    issuer.authorize(header, scope, lambda audience: audience == AUD)


def test_a_token_is_a_jwt_with_auth0s_claims() -> None:
    _, clock, token = issued()
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload == {
        "iss": "http://127.0.0.1:8787/",
        "sub": "w@clients",
        "aud": AUD,
        "iat": int(clock.now),
        "exp": clock.now + 60,
        "scope": " ".join(SCOPES),
        "gty": "client-credentials",
        "azp": "w",
    }


def test_a_valid_token_with_the_scope_is_authorized() -> None:
    issuer, _, token = issued()
    claims = issuer.authorize(f"Bearer {token}", "create:client_grants", lambda a: a == AUD)
    assert claims.client_id == "w"


def error_of(
    issuer: TokenIssuer, header: str | None, scope: str = "read:client_grants"
) -> ApiError:
    with pytest.raises(ApiError) as caught:
        authorize(issuer, header, scope)
    return caught.value


def test_no_header_is_missing_authentication() -> None:
    assert error_of(issued()[0], None).body() == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": "Missing authentication",
    }


@pytest.mark.parametrize("header", ["Basic abc", "Bearer ", "Bearer not-a-jwt"])
def test_a_malformed_header_is_an_invalid_token(header: str) -> None:
    assert error_of(issued()[0], header).message == "Invalid token"


def test_a_token_from_another_issuer_has_an_invalid_signature() -> None:
    _, _, foreign = issued()
    error = error_of(TokenIssuer(), f"Bearer {foreign}")
    assert (error.status, error.message) == (
        401,
        "Invalid signature received for JSON Web Token validation",
    )


def test_a_tampered_token_has_an_invalid_signature() -> None:
    issuer, _, token = issued()
    header, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["scope"] += " delete:everything"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert error_of(issuer, f"Bearer {header}.{forged}.{signature}").status == 401


def test_a_token_past_its_lifetime_is_expired() -> None:
    issuer, clock, token = issued(lifetime_s=60)
    clock.now += 60
    assert error_of(issuer, f"Bearer {token}").message == (
        "Expired token received for JSON Web Token validation"
    )


def test_a_token_for_another_api_is_invalid() -> None:
    clock = Clock()
    issuer = TokenIssuer(clock=clock)
    token = issuer.issue(
        client_id="w", audience="https://api.example.com/", scopes=SCOPES, lifetime_s=60, issuer="x"
    )
    assert error_of(issuer, f"Bearer {token}").message == "Invalid token"


def test_a_token_without_the_scope_is_forbidden_naming_the_scope() -> None:
    issuer, _, token = issued()
    assert error_of(issuer, f"Bearer {token}", "delete:client_grants").body() == {
        "statusCode": 403,
        "error": "Forbidden",
        "message": "Insufficient scope, expected any of: delete:client_grants",
        "errorCode": "insufficient_scope",
    }


def test_a_short_lifetime_is_not_rounded_down() -> None:
    issuer, clock, token = issued(lifetime_s=1)
    clock.now += 0.9
    authorize(issuer, f"Bearer {token}")  # raises ApiError if it were expired
