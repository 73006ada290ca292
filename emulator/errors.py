"""The two error shapes the emulator answers with, as Auth0 writes them.

    Exception
     ├── ApiError    a Management API error:
     │               {"statusCode": 404, "error": "Not Found", "message": "...", "errorCode": "..."}
     └── OAuthError  an /oauth/token error:
                     {"error": "access_denied", "error_description": "...", "error_uri": "..."}

The pure rule modules raise these; the HTTP layer turns them into responses in one place.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def reason_phrase(status: int) -> str:
    """The HTTP reason phrase Auth0 puts in `error` ("Bad Request" for 400)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class ApiError(Exception):
    """Raised when a Management API call must fail with an Auth0-shaped error body."""

    def __init__(self, status: int, message: str, error_code: str | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.error_code = error_code

    def body(self) -> dict[str, Any]:
        """The response body; `errorCode` is left out when None, as Auth0 does on some errors."""
        body: dict[str, Any] = {
            "statusCode": self.status,
            "error": reason_phrase(self.status),
            "message": self.message,
        }
        if self.error_code is not None:
            body["errorCode"] = self.error_code
        return body


class OAuthError(Exception):
    """Raised when /oauth/token must fail with an OAuth-shaped error body."""

    def __init__(
        self, status: int, error: str, description: str, error_uri: str | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.error_uri = error_uri

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "error_description": self.description}
        if self.error_uri is not None:
            body["error_uri"] = self.error_uri
        return body
