"""Injected trouble: latency, 5xx replies, dropped connections, lost replies, hangs (pure).

Each Management API request (and /oauth/token when `apply_to_token_endpoint`) first waits
`latency_ms ± jitter_ms`, then meets at most one fault, drawn with one uniform number so the
rates are exact shares of the traffic (their sum must stay ≤ 1):

- drop: the connection is closed before anything is done; the client sees no response;
- error: a `error_status` reply, nothing done;
- commit_lost: the request is carried out (a grant is stored), then the reply is lost:
  a 5xx (`commit_lost_reply: error`) or a closed connection (`drop`);
- hang: the server sits on the request for `hang_s`, longer than the client's timeout,
  then carries it out and answers (to a client that has probably gone);
- echo: an `echo_status` reply whose every field repeats what was received (a tenant, or a
  proxy in front of it, that echoes requests): the Authorization header raw and URL-encoded,
  the body as sent (a token request's form, the client secret URL-encoded in it), nothing done.

`fault_methods` limits the faults to some HTTP methods (["DELETE"]: lost deletes, answered
lookups). `create_latency_ms` slows creates only (a slow write while reads stay fast): the create is
carried out after the wait, whether or not the client is still there.
"""

from __future__ import annotations

import enum
from typing import Literal
from urllib.parse import quote_plus

from pydantic import BaseModel, ConfigDict, Field, model_validator

from grant_worker.emulator.errors import reason_phrase

Rate = Field(default=0.0, ge=0.0, le=1.0)


class Fault(enum.Enum):
    NONE = "none"
    DROP = "drop"
    ERROR = "error"
    COMMIT_LOST = "commit_lost"
    HANG = "hang"
    ECHO = "echo"


class FaultSettings(BaseModel):
    """All off by default. Durations in milliseconds or seconds as named."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0.0)
    jitter_ms: float = Field(default=0.0, ge=0.0)
    error_rate: float = Rate
    error_status: int = Field(default=503, ge=500, le=599)
    drop_rate: float = Rate
    commit_lost_rate: float = Rate
    commit_lost_reply: Literal["error", "drop"] = "error"
    hang_rate: float = Rate
    hang_s: float = Field(default=30.0, ge=0.0)
    echo_rate: float = Rate
    echo_status: int = Field(default=400, ge=400, le=599)
    apply_to_token_endpoint: bool = False
    # Extra wait before a create (POST /api/v2/client-grants) only, on top of latency_ms: a
    # tenant slow to write while it still reads fast.
    create_latency_ms: float = Field(default=0.0, ge=0.0)
    # The HTTP methods the faults hit (empty: every method): e.g. ["DELETE"] loses the replies
    # of deletes while the lookups that resolve them are answered.
    fault_methods: tuple[Literal["GET", "POST", "PATCH", "DELETE"], ...] = ()

    @model_validator(mode="after")
    def _rates_fit(self) -> FaultSettings:
        total = (
            self.drop_rate + self.error_rate + self.commit_lost_rate + self.hang_rate
            + self.echo_rate
        )  # fmt: skip
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}, more than 1")
        return self

    def updated(self, **changes: object) -> FaultSettings:
        """A copy with `changes` applied and checked. Raises pydantic.ValidationError."""
        return FaultSettings.model_validate({**self.model_dump(), **changes})

    def choose(self, u: float) -> Fault:
        """The fault for a uniform draw `u` in [0, 1)."""
        threshold = 0.0
        for fault, rate in (
            (Fault.DROP, self.drop_rate),
            (Fault.ERROR, self.error_rate),
            (Fault.COMMIT_LOST, self.commit_lost_rate),
            (Fault.HANG, self.hang_rate),
            (Fault.ECHO, self.echo_rate),
        ):
            threshold += rate
            if u < threshold:
                return fault
        return Fault.NONE

    def delay_s(self, u: float) -> float:
        """The latency for a uniform draw `u` in [0, 1), in seconds, never negative."""
        delay_ms = self.latency_ms + (2.0 * u - 1.0) * self.jitter_ms
        return max(0.0, delay_ms) / 1000.0

    def hits(self, method: str) -> bool:
        """Whether faults apply to a request with this HTTP method."""
        return not self.fault_methods or method in self.fault_methods

    @property
    def any_fault(self) -> bool:
        rates = (self.drop_rate, self.error_rate, self.commit_lost_rate, self.hang_rate)
        return sum(rates) + self.echo_rate > 0


FAULT_MESSAGES = {
    500: "An internal server error occurred",
}


def fault_body(status: int) -> dict[str, object]:
    """The body of an injected 5xx, in the Management API error shape."""
    return {
        "statusCode": status,
        "error": reason_phrase(status),
        "message": FAULT_MESSAGES.get(status, reason_phrase(status)),
    }


def echo_body(status: int, authorization: str, received: str) -> dict[str, object]:
    """The body of an echo fault: every field carries what the request carried, in the forms
    a careless tenant or proxy repeats it (`errorCode` the credential alone, raw)."""
    credential = authorization.partition(" ")[2] or received
    heard = f"authorization={quote_plus(authorization)}&body={received}"
    return {
        "statusCode": status,
        "error": reason_phrase(status),
        "error_description": f"you sent {heard}",
        "message": f"you sent {heard}; Authorization: {authorization}",
        "errorCode": credential,
    }
