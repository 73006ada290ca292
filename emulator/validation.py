"""Schema rules of the client-grants endpoints, worded as Auth0 words them (pure, no HTTP).

Auth0 validates bodies and query strings with z-schema against its OpenAPI schemas and reports
every violation as one sentence, several joined with " (also) ":

    Payload validation error: 'String is too short (0 chars), minimum 1' on property audience
    (The audience (API identifier) of this client grant). (also) Payload validation error: ...

Violations at the root have no "on property" part:
`Payload validation error: 'Additional properties not allowed: foo'.` The z-schema detail texts
are reproduced verbatim; how Auth0 names an array item (`scope[0]`) is [inferred].

Only the schema lives here. Rules that need the tenant (unknown client, 409, ...) live in
`emulator.grants`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from grant_worker.emulator.dialect import Dialect
from grant_worker.emulator.errors import ApiError

INVALID_BODY = "invalid_body"
INVALID_QUERY = "invalid_query_string"
DEFAULT_FOR_VALUES = ("third_party_clients",)
ORGANIZATION_USAGE_VALUES = ("deny", "allow", "require")


@dataclass(frozen=True)
class Prop:
    """One property of a request schema."""

    name: str
    type: Literal["string", "boolean", "array"]
    description: str = ""
    enum: tuple[str, ...] | None = None
    min_length: int | None = None  # for strings, or for each array item
    max_length: int | None = None
    nullable: bool = False


@functools.cache  # built once per enum, not once per request
def _create_props(subject_types: tuple[str, ...]) -> tuple[Prop, ...]:
    return (
        Prop("client_id", "string", "ID of the client."),
        Prop("audience", "string", "The audience (API identifier) of this client grant", None, 1),
        Prop("default_for", "string", "", DEFAULT_FOR_VALUES),
        Prop(
            "organization_usage",
            "string",
            "Defines whether organizations can be used with client credentials exchanges "
            "for this grant.",
            ORGANIZATION_USAGE_VALUES,
        ),
        Prop(
            "allow_any_organization",
            "boolean",
            "If enabled, any organization can be used with this grant. If disabled (default), "
            "the grant must be explicitly assigned to the desired organizations.",
        ),
        Prop("scope", "array", "Scopes allowed for this client grant.", None, 1, 280),
        Prop(
            "subject_type",
            "string",
            "The type of application access the client grant allows.",
            subject_types,
        ),
        Prop(
            "authorization_details_types",
            "array",
            "Types of authorization_details allowed for this client grant.",
            None,
            1,
            255,
        ),
        Prop(
            "allow_all_scopes",
            "boolean",
            "If enabled, all scopes configured on the resource server are allowed for this grant.",
        ),
    )


def _update_props() -> tuple[Prop, ...]:
    by_name = {p.name: p for p in _create_props(())}
    nullable = {"scope", "organization_usage", "allow_any_organization", "allow_all_scopes"}
    names = (
        "scope",
        "organization_usage",
        "allow_any_organization",
        "authorization_details_types",
        "allow_all_scopes",
    )
    return tuple(replace(by_name[n], nullable=n in nullable) for n in names)


UPDATE_PROPS = _update_props()


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value ("integer", "array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _sentence(kind: str, detail: str, prop: str | None = None, description: str = "") -> str:
    if prop is None:
        return f"{kind} validation error: '{detail}'."
    described = f" ({description.rstrip('.')})" if description else ""
    return f"{kind} validation error: '{detail}' on property {prop}{described}."


def _raise_if_any(sentences: list[str], error_code: str) -> None:
    if sentences:
        raise ApiError(400, " (also) ".join(sentences), error_code)


def _check_string(value: str, prop: Prop) -> str | None:
    if prop.enum is not None and value not in prop.enum:
        return f'No enum match for: "{value}"'
    if prop.min_length is not None and len(value) < prop.min_length:
        return f"String is too short ({len(value)} chars), minimum {prop.min_length}"
    if prop.max_length is not None and len(value) > prop.max_length:
        return f"String is too long ({len(value)} chars), maximum {prop.max_length}"
    return None


def _check_prop(value: Any, prop: Prop) -> list[str]:
    found = json_type(value)
    if found == "null" and prop.nullable:
        return []
    if found != prop.type:
        expected = f"{prop.type},null" if prop.nullable else prop.type
        detail = f"Expected type {expected} but found type {found}"
        return [_sentence("Payload", detail, prop.name, prop.description)]
    if prop.type == "string":
        detail_or_none = _check_string(value, prop)
        return (
            []
            if detail_or_none is None
            else [_sentence("Payload", detail_or_none, prop.name, prop.description)]
        )
    if prop.type == "array":
        errors = []
        for index, item in enumerate(value):
            path = f"{prop.name}[{index}]"
            if not isinstance(item, str):
                detail = f"Expected type string but found type {json_type(item)}"
            else:
                detail = _check_string(item, prop) or ""
            if detail:
                errors.append(_sentence("Payload", detail, path, prop.description))
        return errors
    return []


def _check_object(
    body: Any, props: Iterable[Prop], required: tuple[str, ...], min_properties: int
) -> dict[str, Any]:
    if not isinstance(body, dict):
        detail = f"Expected type object but found type {json_type(body)}"
        _raise_if_any([_sentence("Payload", detail)], INVALID_BODY)
    by_name = {p.name: p for p in props}
    errors: list[str] = []
    extra = [key for key in body if key not in by_name]
    if extra:
        errors.append(_sentence("Payload", f"Additional properties not allowed: {','.join(extra)}"))
    if len(body) < min_properties:
        detail = f"Too few properties defined ({len(body)}), minimum {min_properties}"
        errors.append(_sentence("Payload", detail))
    errors.extend(
        _sentence("Payload", f"Missing required property: {name}")
        for name in required
        if name not in body
    )
    for prop in by_name.values():
        if prop.name in body:
            errors.extend(_check_prop(body[prop.name], prop))
    _raise_if_any(errors, INVALID_BODY)
    return dict(body)


def validate_create(body: Any, dialect: Dialect) -> dict[str, Any]:
    """Check a POST /client-grants body against `CreateClientGrantRequestContent`.

    Returns the body as a new dict. Raises ApiError 400 `invalid_body` listing every violation.
    """
    props = _create_props(dialect.subject_types)
    return _check_object(body, props, required=("audience",), min_properties=0)


def validate_update(body: Any) -> dict[str, Any]:
    """Check a PATCH /client-grants/{id} body against `UpdateClientGrantRequestContent`.

    `client_id`, `audience`, `subject_type` and `default_for` are not in that schema, so they
    fail as additional properties. Raises ApiError 400 `invalid_body`.
    """
    return _check_object(body, UPDATE_PROPS, required=(), min_properties=1)


def coerce_form(form: Mapping[str, list[str]], dialect: Dialect) -> dict[str, Any]:
    """Turn a form-encoded body into the JSON shape the schema checks.

    Array properties take every value of a repeated key; "true"/"false" become booleans;
    anything else stays a string so the schema reports it. [inferred]: Auth0's own coercion of
    form bodies was never captured.
    """
    props = {p.name: p for p in _create_props(dialect.subject_types)}
    body: dict[str, Any] = {}
    for key, values in form.items():
        prop = props.get(key)
        if prop is not None and prop.type == "array":
            body[key] = list(values)
        elif prop is not None and prop.type == "boolean" and values[-1] in ("true", "false"):
            body[key] = values[-1] == "true"
        else:
            body[key] = values[-1]
    return body


# -- the list query ---------------------------------------------------------------------------

ListMode = Literal["array", "totals", "checkpoint"]


@dataclass(frozen=True)
class ListQuery:
    """A parsed GET /client-grants query.

    mode: "array" (bare array), "totals" (offset with include_totals) or "checkpoint"
    (`from`/`take` present: this form wins over the offset parameters, as real Auth0 does).
    """

    mode: ListMode
    filters: dict[str, Any]
    page: int = 0
    per_page: int = 50
    from_: str | None = None
    take: int = 50


_QUERY_DESCRIPTIONS = {
    "per_page": "Number of results per page. Defaults to 50.",
    "page": "Page index of the results to return. First page is 0.",
    "include_totals": "Return results inside an object that contains the total result count "
    "(true) or as a direct array of results (false, default).",
    "take": "Number of results per page. Defaults to 50.",
    "allow_any_organization": "Optional filter on allow_any_organization.",
    "subject_type": "The type of application access the client grant allows.",
    "default_for": "Applies this client grant as the default for all clients in the "
    "specified group.",
}


def _query_int(
    query: Mapping[str, str], name: str, low: int, high: int | None
) -> tuple[int | None, str | None]:
    raw = query.get(name)
    if raw is None:
        return None, None
    description = _QUERY_DESCRIPTIONS[name]
    try:
        value = int(raw)
    except ValueError:
        detail = "Expected type integer but found type string"
        return None, _sentence("Query", detail, name, description)
    if value < low:
        return None, _sentence(
            "Query", f"Value {value} is less than minimum {low}", name, description
        )
    if high is not None and value > high:
        return None, _sentence(
            "Query", f"Value {value} is greater than maximum {high}", name, description
        )
    return value, None


def _query_enum(
    query: Mapping[str, str], name: str, values: tuple[str, ...]
) -> tuple[str | None, str | None]:
    raw = query.get(name)
    if raw is None or raw in values:
        return raw, None
    return None, _sentence("Query", f'No enum match for: "{raw}"', name, _QUERY_DESCRIPTIONS[name])


def parse_list_query(query: Mapping[str, str], dialect: Dialect) -> ListQuery:
    """Parse the query of GET /client-grants. Unknown parameters are ignored.

    Raises ApiError 400 `invalid_query_string` listing every violation.
    """
    errors: list[str] = []
    per_page, error = _query_int(query, "per_page", 1, 100)
    errors += [error] if error else []
    page, error = _query_int(query, "page", 0, None)
    errors += [error] if error else []
    take, error = _query_int(query, "take", 1, 100)
    errors += [error] if error else []
    totals, error = _query_enum(query, "include_totals", ("true", "false"))
    errors += [error] if error else []
    any_org, error = _query_enum(query, "allow_any_organization", ("true",))
    errors += [error] if error else []
    subject_type, error = _query_enum(query, "subject_type", dialect.subject_types)
    errors += [error] if error else []
    default_for, error = _query_enum(query, "default_for", DEFAULT_FOR_VALUES)
    errors += [error] if error else []
    _raise_if_any(errors, INVALID_QUERY)

    filters: dict[str, Any] = {
        "audience": query.get("audience"),
        "client_id": query.get("client_id"),
        "allow_any_organization": True if any_org else None,
        "subject_type": subject_type,
        "default_for": default_for,
    }
    filters = {k: v for k, v in filters.items() if v is not None}
    size = dialect.default_page_size
    if "take" in query or "from" in query:
        return ListQuery("checkpoint", filters, from_=query.get("from"), take=take or size)
    mode: ListMode = "totals" if totals == "true" else "array"
    return ListQuery(mode, filters, page=page or 0, per_page=per_page or size)
