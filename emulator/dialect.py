"""What the emulator says where Auth0's exact words or behaviour are not known.

Every field here stands for a fact the reference (shared auth0/README.md) marks [inferred] or
lists under "Gaps / not found". They live in one model so a seed file can override them (its
`dialect:` block) the day a real capture shows the true text, without touching the rules.
Facts that *are* confirmed by real traffic (the express_configuration 400, the 404 of GET,
the 409 message, the 429 body...) are written in the rules themselves.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The fixed set a Management API grant with subject_type "user" may hold (auth0-cli docs,
# `client-grants create`: "scopes must be a subset of the fixed current_user set").
CURRENT_USER_SCOPES = (
    "read:current_user",
    "update:current_user_metadata",
    "delete:current_user_metadata",
    "create:current_user_metadata",
    "create:current_user_device_credentials",
    "delete:current_user_device_credentials",
    "update:current_user_identities",
)


class Dialect(BaseModel):
    """Texts, codes and switches for the [inferred] corners of the API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The spec enum is client/user; the newest SDKs add anonymous_user.
    subject_types: tuple[str, ...] = ("client", "user", "anonymous_user")

    # 409: the message is real, the errorCode was never captured.
    conflict_error_code: str | None = "conflict"

    # 401: real bodies quoted in issues carry no errorCode.
    invalid_token_error_code: str | None = None

    # 404 on create when the audience is unknown: message real, errorCode inferred from
    # GET /resource-servers/{id}.
    unknown_audience_error_code: str | None = "inexistent_resource_server"

    # 404 on create when client_id is unknown: taken from other client endpoints.
    unknown_client_message: str = "The client does not exist"
    unknown_client_error_code: str | None = "inexistent_client"

    # 400 when neither or both of client_id / default_for are sent.
    client_xor_default_for_message: str = (
        "Payload validation error: 'Exactly one of client_id or default_for is required'."
    )
    client_xor_default_for_error_code: str | None = "invalid_body"

    # Whether the server refuses a non-empty scope together with allow_all_scopes: true
    # (terraform refuses it client-side; the server's own behaviour is unknown).
    reject_scope_with_allow_all_scopes: bool = True
    scope_with_allow_all_scopes_message: str = (
        "Payload validation error: 'scope cannot be provided when allow_all_scopes is true'."
    )
    scope_with_allow_all_scopes_error_code: str | None = "invalid_body"

    # Real traffic suggests grants are not checked against the scopes the API declares; set
    # this to refuse scopes the resource server does not define.
    validate_scopes_against_api: bool = False
    undeclared_scopes_message: str = (
        "Payload validation error: 'Scopes not defined on the resource server: {scopes}'."
    )
    undeclared_scopes_error_code: str | None = "invalid_body"

    # Client app types that cannot hold grants. The message for them is real (recording 02).
    app_types_without_grants: tuple[str, ...] = ("express_configuration",)

    # 400 for a third-party client (or a default_for grant) on the Management API.
    third_party_message: str = (
        "Client grants for this API cannot be created for third-party clients."
    )
    third_party_error_code: str | None = "invalid_body"

    # Management API grants with subject_type "user" are limited to these scopes.
    current_user_scopes: tuple[str, ...] = CURRENT_USER_SCOPES
    current_user_scopes_message: str = (
        "Payload validation error: 'Scopes not allowed for subject_type user on this API: "
        "{scopes}'."
    )
    current_user_scopes_error_code: str | None = "invalid_body"

    # PATCH of an unknown id: the spec text; errorCode as the real GET 404.
    update_not_found_message: str = "The client grant does not exist."

    # Changing or deleting an is_system grant.
    system_grant_message: str = "System grants cannot be modified or deleted directly."
    system_grant_error_code: str | None = "operation_not_supported"

    # 400 for an unusable `from` checkpoint.
    bad_checkpoint_message: str = (
        "Query validation error: 'Invalid checkpoint' on property from "
        "(Optional Id from which to start selection)."
    )

    # Default `per_page` / `take` when the query does not say.
    default_page_size: int = Field(default=50, ge=1, le=100)
