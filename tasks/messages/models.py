"""The wire contracts as Pydantic models: one definition for producers and the worker alike.

- `CreateClientGrant`: the body of `POST /api/v2/client-grants`, to the letter of Auth0's
  `CreateClientGrantRequestContent` (unknown fields rejected, lengths, enums, cross-field rules).
- `GrantRequest`: the envelope a producer enqueues (docs/design.md, "The request").
- `Grant`: a grant as Auth0 returns it, tolerant of fields Auth0 adds later.
- `Outcome` / `ErrorInfo`: what the worker publishes for every request.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, TypeGuard

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    field_validator,
    model_validator,
)

from grant_worker.tasks.messages.limits import (
    MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES,  # re-exported: producers' limit
)
from grant_worker.tasks.messages.limits import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    json_size,
    nesting_depth_of,
)

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def is_request_id(value: Any) -> TypeGuard[str]:
    """Whether `value` may serve as a request id (for input that failed validation as a whole)."""
    return isinstance(value, str) and bool(_REQUEST_ID.fullmatch(value))


def _one_scope_token(value: str) -> str:
    # OAuth scope tokens hold no white space (RFC 6749 3.3): "read:a write:a" as one item
    # would become a grant with a scope nobody can ever ask for.
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain white space (one scope per item)")
    return value


Scope = Annotated[
    str, StringConstraints(min_length=1, max_length=280), AfterValidator(_one_scope_token)
]
AuthorizationDetailsType = Annotated[str, StringConstraints(min_length=1, max_length=255)]

OnConflict = Literal["keep", "merge", "replace", "fail"]
Action = Literal["create", "revoke"]
Status = Literal["created", "exists", "updated", "revoked", "absent", "failed", "rejected"]
ErrorCode = Literal[
    "invalid_request",
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "rate_limited",
    "upstream_error",
    "network_error",
    "poison",
    "cancelled",
    "request_id_reused",
    "expired",
    "protected",
]
SubjectType = Literal["client", "user", "anonymous_user"]
DONE_STATUSES: frozenset[str] = frozenset({"created", "exists", "updated", "revoked", "absent"})
# What a revoke's `grant` may say: the grant's uniqueness key (client, audience, subject type).
REVOKE_GRANT_FIELDS = frozenset({"client_id", "default_for", "audience", "subject_type"})
GRANT_ID_PATTERN = r"^cgr_[A-Za-z0-9]{1,64}$"


class CreateClientGrant(BaseModel):
    """`CreateClientGrantRequestContent`: what `POST /api/v2/client-grants` accepts.

    Strict types (Auth0 does not coerce `"true"` into `true`) and no nulls: a field is either
    set to a value of its type or left out, exactly as the schema reads.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    client_id: Annotated[str, StringConstraints(min_length=1)] | None = None
    audience: Annotated[str, StringConstraints(min_length=1)]
    default_for: Literal["third_party_clients"] | None = None
    organization_usage: Literal["deny", "allow", "require"] | None = None
    allow_any_organization: bool | None = None
    scope: list[Scope] | None = None
    # The API spec file lists client and user; the newest SDKs add anonymous_user.
    subject_type: SubjectType | None = None
    authorization_details_types: list[AuthorizationDetailsType] | None = None
    allow_all_scopes: bool | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        # Runs only for fields the producer sent: an explicit null is refused, as Auth0 does.
        if value is None:
            raise ValueError("must not be null (leave the field out instead)")
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        if (self.client_id is None) == (self.default_for is None):
            raise ValueError("exactly one of client_id or default_for is required")
        if self.allow_all_scopes and self.scope:
            raise ValueError("scope must be empty or absent when allow_all_scopes is true")
        return self

    def body(self) -> dict[str, Any]:
        """The JSON body to send: only the fields that were set."""
        return self.model_dump(exclude_none=True)

    @property
    def effective_subject_type(self) -> str:
        """Auth0 treats an absent subject_type as `client`."""
        return self.subject_type or "client"


class GrantRequest(BaseModel):
    """The request envelope (task `grants.create`, kwarg `request`; or the intake stream)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: RequestId | None = None
    action: Action = "create"
    # A create carries the grant to create; a revoke names its grant by `grant` (the
    # uniqueness key only) or by `grant_id`. Both at once, on a revoke or on a create with
    # `on_conflict: replace`, say the sender has just listed the grant `grant_id` under that
    # key (`grants sync`): the worker then spends one call on it (a DELETE, or a PATCH) instead
    # of looking it up first (`tasks.revoke`, `tasks.provision`).
    grant: CreateClientGrant | None = None
    grant_id: Annotated[str, StringConstraints(pattern=GRANT_ID_PATTERN)] | None = None
    on_conflict: OnConflict = "keep"
    batch_id: RequestId | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        # Depth first: measuring the size serialises, and serialising recurses.
        depth = nesting_depth_of(value, stop_at=MAX_METADATA_DEPTH)
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"nested more than {MAX_METADATA_DEPTH} deep")
        size = json_size(value)
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"at most {MAX_METADATA_BYTES} bytes of UTF-8 JSON, got {size}")
        return value

    @model_validator(mode="after")
    def _action_rules(self) -> Self:
        if self.action == "create":
            if self.grant is None:
                raise ValueError("grant: is required")
            if self.grant_id is not None and self.on_conflict != "replace":
                raise ValueError(
                    'grant_id: a create names the grant it replaces only with on_conflict "replace"'
                )
            return self
        if self.grant is None and self.grant_id is None:
            raise ValueError("a revoke names its grant by grant or grant_id")
        if self.grant is not None:
            extra = sorted(self.grant.model_fields_set - REVOKE_GRANT_FIELDS)
            if extra:
                raise ValueError(
                    f"grant.{extra[0]}: not allowed in a revoke (it names the grant by "
                    "client_id or default_for, audience and subject_type only)"
                )
        if "on_conflict" in self.model_fields_set:
            raise ValueError("on_conflict: only a create has one")
        return self

    @property
    def creates(self) -> CreateClientGrant:
        """The grant a create asks for (the model guarantees one for every create)."""
        assert self.grant is not None, "a create always has a grant"
        return self.grant

    def wire(self) -> dict[str, Any]:
        """The envelope as producers put it on the queue (`action` only for a revoke, so
        that a create reads as it always has)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data.pop("on_conflict" if self.action == "revoke" else "action", None)
        return data


class Grant(BaseModel):
    """A client grant as Auth0 returns it; fields Auth0 adds later are kept, not refused."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    client_id: str | None = None
    audience: str
    scope: list[str] | None = None
    organization_usage: str | None = None
    allow_any_organization: bool | None = None
    is_system: bool | None = None
    subject_type: str | None = None
    default_for: str | None = None
    authorization_details_types: list[str] | None = None
    allow_all_scopes: bool | None = None

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ErrorInfo(BaseModel):
    """Why a request did not end in a grant."""

    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    message: str
    http_status: int | None = None
    auth0_error_code: str | None = None
    retryable: bool = False
    details: dict[str, Any] | None = None


class Outcome(BaseModel):
    """The one result of one request (stream `{prefix}results`)."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    batch_id: str | None = None
    status: Status
    grant: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    # Under `on_conflict: keep`, what the existing grant has that the request did not ask for
    # (or lacks); null when nothing differs or the status is not `exists`.
    differences: dict[str, Any] | None = None
    attempts: int = 0
    received_at: str
    finished_at: str
    metadata: dict[str, Any] | None = None
    # "lookup" when a create whose reply was lost was found by a lookup, equal to the request
    # (`created`); null otherwise.
    resolved_by: Literal["lookup"] | None = None

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    def to_json(self) -> str:
        return self.model_dump_json()


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with millisecond precision and a `Z`, as outcomes carry it."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
