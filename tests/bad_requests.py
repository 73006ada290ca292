"""A corpus of invalid request envelopes, each with the words its rejection must contain.

Used by the unit tests of validation and, through a real worker, by the bad-input suite.
"""

from __future__ import annotations

from typing import Any

OK_GRANT: dict[str, Any] = {"client_id": "svc-00001", "audience": "https://api.example.com/"}


def grant(**changes: Any) -> dict[str, Any]:
    body = {**OK_GRANT, **changes}
    return {"grant": {k: v for k, v in body.items() if v is not _DROP}}


_DROP = object()


def nested(depth: int, leaf: Any = "x") -> Any:
    """`{"n": {"n": … leaf}}`, `depth` objects deep (without recursing)."""
    value = leaf
    for _ in range(depth):
        value = {"n": value}
    return value


def nested_text(depth: int) -> str:
    """A JSON array nested `depth` deep, as text (1,200 deep is 2.4 KB)."""
    return "[" * depth + "]" * depth


# (case name, envelope, words the reason must contain)
BAD_ENVELOPES: list[tuple[str, Any, list[str]]] = [
    ("audience missing", grant(audience=_DROP), ["grant.audience", "required"]),
    ("audience empty", grant(audience=""), ["grant.audience", "empty"]),
    ("audience not a string", grant(audience=42), ["grant.audience", "string"]),
    ("neither client_id nor default_for", grant(client_id=_DROP), ["exactly one", "client_id"]),
    (
        "both client_id and default_for",
        grant(default_for="third_party_clients"),
        ["exactly one", "default_for"],
    ),
    ("client_id empty", grant(client_id=""), ["grant.client_id", "empty"]),
    ("client_id null", grant(client_id=None), ["grant.client_id", "null"]),
    ("client_id a number", grant(client_id=7), ["grant.client_id", "string"]),
    ("default_for unknown", grant(client_id=_DROP, default_for="all"), ["grant.default_for"]),
    ("unknown grant field", grant(scopes=["a"]), ["grant.scopes", "unknown field"]),
    ("scope not an array", grant(scope="read:a"), ["grant.scope", "array"]),
    ("scope item empty", grant(scope=["read:a", ""]), ["grant.scope[1]", "empty"]),
    ("scope item too long", grant(scope=["x" * 281]), ["grant.scope[0]", "280"]),
    ("scope item not a string", grant(scope=[1]), ["grant.scope[0]", "string"]),
    ("scope null", grant(scope=None), ["grant.scope", "null"]),
    (
        "scope with allow_all_scopes",
        grant(scope=["read:a"], allow_all_scopes=True),
        ["allow_all_scopes", "scope"],
    ),
    ("allow_all_scopes a string", grant(allow_all_scopes="true"), ["allow_all_scopes", "boolean"]),
    (
        "allow_any_organization a number",
        grant(allow_any_organization=1),
        ["allow_any_organization", "boolean"],
    ),
    ("organization_usage unknown", grant(organization_usage="maybe"), ["organization_usage"]),
    ("subject_type unknown", grant(subject_type="robot"), ["subject_type"]),
    (
        "authorization_details_types item too long",
        grant(authorization_details_types=["t" * 256]),
        ["authorization_details_types[0]", "255"],
    ),
    (
        "authorization_details_types item empty",
        grant(authorization_details_types=[""]),
        ["authorization_details_types[0]", "empty"],
    ),
    (
        "authorization_details_types not an array",
        grant(authorization_details_types="payment"),
        ["authorization_details_types", "array"],
    ),
    ("grant missing", {"on_conflict": "keep"}, ["grant", "required"]),
    ("grant not an object", {"grant": "svc-00001"}, ["grant", "object"]),
    ("grant an array", {"grant": [OK_GRANT]}, ["grant", "object"]),
    ("unknown envelope field", {**grant(), "priority": 1}, ["priority", "unknown field"]),
    ("on_conflict typo", {**grant(), "on_conflict": "mrege"}, ["on_conflict", "merge"]),
    ("on_conflict misspelled key", {**grant(), "on_confilct": "merge"}, ["on_confilct"]),
    ("request_id with spaces", {**grant(), "request_id": "a b"}, ["request_id", "match"]),
    ("request_id too long", {**grant(), "request_id": "r" * 129}, ["request_id"]),
    ("request_id empty", {**grant(), "request_id": ""}, ["request_id"]),
    ("batch_id too long", {**grant(), "batch_id": "b" * 129}, ["batch_id", "128"]),
    ("metadata not an object", {**grant(), "metadata": ["x"]}, ["metadata", "object"]),
    ("metadata over 4 KiB", {**grant(), "metadata": {"note": "n" * 4100}}, ["metadata", "4096"]),
    # Metadata nested past 32 deep: deeper metadata would get a grant created, then an outcome
    # that cannot be serialised.
    ("metadata nested 40 deep", {**grant(), "metadata": nested(40)}, ["metadata", "32 deep"]),
    # Counted in UTF-8 bytes as sent, not on ASCII-escaped JSON: 2,100 x "é" is 4,200 bytes.
    (
        "metadata over 4 KiB of UTF-8",
        {**grant(), "metadata": {"note": "é" * 2100}},
        ["metadata", "4096"],
    ),
    ("request nested 60 deep", {**grant(), "batch_id": nested(60)}, ["nested", "48"]),
    ("request_id with a bidi control", {**grant(), "request_id": "id\u202eevil"}, ["request_id"]),
    ("envelope an array", [grant()], ["object"]),
    ("envelope a number", 12, ["object"]),
    ("envelope null", None, ["object"]),
]

# Raw texts (not JSON objects) as a producer might send them as the request.
BAD_TEXTS: list[tuple[str, str | bytes, list[str]]] = [
    ("not JSON", "{grant: nope", ["not valid JSON"]),
    ("truncated JSON", '{"grant": {"audience": "a"', ["not valid JSON"]),
    ("invalid UTF-8", b'{"grant": {"audience": "\xff\xfe"}}', ["UTF-8"]),
    ("empty text", "", ["not valid JSON"]),
    # 2.4 KB of JSON nested 1,200 deep: Python's `json` raises RecursionError on it.
    ("nested 1,200 deep", nested_text(1200), ["nested", "1200"]),
    ("metadata nested 998 deep", '{"grant": {}, "metadata": ' + nested_text(998) + "}", ["nested"]),
]

# Metadata the contract accepts though a check on ASCII-escaped JSON would refuse it: 2,019
# bytes of UTF-8 (its ASCII-escaped JSON is over 4,096).
UTF8_METADATA_WITHIN_LIMIT: dict[str, Any] = {"note": "é" * 1003 + "x" * 2}
