"""What to do when a create answers 409: find the existing grant, then apply `on_conflict`.

Pure functions: the lookup filters, the pick among candidates, the differences between the
request and the grant, and the PATCH that `merge` / `replace` need. `tasks.provision` does the
calls.

Comparisons use what Auth0 means, not what it echoes: an absent `organization_usage` is
`deny`, absent booleans are `false`, absent lists are empty, an absent `subject_type` is
`client`, and scopes compare as sets. While `allow_all_scopes` is on (either side), the scope
lists are not compared: that grant covers every scope already.

| mode      | nothing differs | differences                                                  |
|-----------|-----------------|--------------------------------------------------------------|
| `keep`    | `exists`        | `exists`, with the differences                               |
| `merge`   | `exists`        | PATCH adding the missing scopes (or `allow_all_scopes`) →    |
|           |                 | `updated`; `exists` with the differences when none missing   |
| `replace` | `exists`        | PATCH every PATCH-able field that differs → `updated`        |
| `fail`    | raise `GrantConflict`                                                          |

Before any mode applies, a create that may have been sent by this request (its reply was lost)
and whose lookup finds a grant equal to the request (`is_equal`) is our own: `created`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from grant_worker.tasks.messages.models import CreateClientGrant, Grant, OnConflict

Mode = Literal["keep", "merge", "replace"]


@dataclass(frozen=True)
class Wanted:
    """The PATCH-able settings of a grant, with Auth0's defaults filled in.

    These are the fields `PATCH /api/v2/client-grants/{id}` accepts; the others (client_id,
    audience, subject_type, default_for) are immutable and part of the match.
    """

    scope: frozenset[str]
    organization_usage: str
    allow_any_organization: bool
    authorization_details_types: frozenset[str]
    allow_all_scopes: bool


@dataclass(frozen=True)
class Plan:
    """The outcome of the pure decision: a PATCH body to send, or nothing to change."""

    patch: dict[str, Any] | None
    differences: dict[str, Any] | None


def lookup_filters(grant: CreateClientGrant) -> dict[str, str]:
    """The `find_grants` keyword arguments that identify the grant a 409 is about."""
    filters = {"audience": grant.audience, "subject_type": grant.effective_subject_type}
    if grant.client_id is not None:
        filters["client_id"] = grant.client_id
    else:
        assert grant.default_for is not None  # exactly one of the two (model rule)
        filters["default_for"] = grant.default_for
    return filters


def pick(requested: CreateClientGrant, candidates: Iterable[Grant]) -> Grant | None:
    """The candidate with the request's uniqueness key, or None when none has it."""
    for grant in candidates:
        if (
            grant.audience == requested.audience
            and grant.client_id == requested.client_id
            and (requested.client_id is not None or grant.default_for == requested.default_for)
            and (grant.subject_type or "client") == requested.effective_subject_type
        ):
            return grant
    return None


def wanted(source: CreateClientGrant | Grant) -> Wanted:
    """What a request asks for, or what a grant has, in Auth0's meaning."""
    return Wanted(
        scope=frozenset(source.scope or ()),
        organization_usage=source.organization_usage or "deny",
        allow_any_organization=bool(source.allow_any_organization),
        authorization_details_types=frozenset(source.authorization_details_types or ()),
        allow_all_scopes=bool(source.allow_all_scopes),
    )


def differences(requested: CreateClientGrant, actual: Grant) -> dict[str, Any] | None:
    """How `actual` differs from what `requested` asks for; None when it does not.

    Shape: `{"scope": {"missing": [...], "extra": [...]}, "organization_usage":
    {"requested": ..., "actual": ...}, ...}`, with only the fields that differ.
    """
    want, have = wanted(requested), wanted(actual)
    found: dict[str, Any] = {}
    if not (want.allow_all_scopes or have.allow_all_scopes):
        _set_difference(found, "scope", want.scope, have.scope)
    _set_difference(
        found,
        "authorization_details_types",
        want.authorization_details_types,
        have.authorization_details_types,
    )
    for name in ("organization_usage", "allow_any_organization", "allow_all_scopes"):
        if getattr(want, name) != getattr(have, name):
            found[name] = {"requested": getattr(want, name), "actual": getattr(have, name)}
    return found or None


def merge_patch(requested: CreateClientGrant, actual: Grant) -> dict[str, Any] | None:
    """The PATCH that adds what the request asks for and the grant lacks, scope-wise only.

    The union of scopes (the grant's own order, then the missing ones in the request's order),
    or `allow_all_scopes: true` when the request asks for every scope. None when nothing is
    missing: `merge` never takes anything away and never touches other settings.
    """
    if actual.allow_all_scopes:
        return None
    if requested.allow_all_scopes:
        return {"allow_all_scopes": True}
    have = list(actual.scope or ())
    missing = [s for s in _unique(requested.scope or ()) if s not in set(have)]
    return {"scope": have + missing} if missing else None


def replace_patch(requested: CreateClientGrant, actual: Grant) -> dict[str, Any] | None:
    """The PATCH that makes `actual` equal to the request (PATCH-able fields only), or None."""
    want, have = wanted(requested), wanted(actual)
    patch: dict[str, Any] = {}
    if want.allow_all_scopes != have.allow_all_scopes:
        patch["allow_all_scopes"] = want.allow_all_scopes
    if not want.allow_all_scopes and (have.allow_all_scopes or want.scope != have.scope):
        patch["scope"] = list(_unique(requested.scope or ()))
    if want.organization_usage != have.organization_usage:
        patch["organization_usage"] = want.organization_usage
    if want.allow_any_organization != have.allow_any_organization:
        patch["allow_any_organization"] = want.allow_any_organization
    if want.authorization_details_types != have.authorization_details_types:
        patch["authorization_details_types"] = list(
            _unique(requested.authorization_details_types or ())
        )
    return patch or None


def full_replace_patch(requested: CreateClientGrant) -> dict[str, Any]:
    """The PATCH that makes any grant with the request's key equal to it, whatever it holds now:
    every PATCH-able field, the ones the request leaves out reset (null, or an empty list where
    the API takes no null). For a PATCH sent without looking at the grant first."""
    patch: dict[str, Any] = {
        "allow_all_scopes": True if requested.allow_all_scopes else None,
        "organization_usage": requested.organization_usage,
        "allow_any_organization": requested.allow_any_organization,
        "authorization_details_types": list(_unique(requested.authorization_details_types or ())),
    }
    if not requested.allow_all_scopes:
        patch["scope"] = list(_unique(requested.scope or ()))
    return patch


def plan(mode: Mode, requested: CreateClientGrant, actual: Grant) -> Plan:
    """What `mode` does with the existing grant `actual` (see the module table)."""
    if mode == "merge":
        patch = merge_patch(requested, actual)
    elif mode == "replace":
        patch = replace_patch(requested, actual)
    else:
        patch = None
    return Plan(patch=patch, differences=None if patch else differences(requested, actual))


def effective_mode(on_conflict: OnConflict) -> Mode | None:
    """The mode to apply, or None for "fail with `conflict`".

    A grant that may be our own lost create is recognised before this (`is_equal`): a grant
    that differs from the request is never ours, so `fail` fails on it, whoever sent what.
    """
    if on_conflict == "fail":
        return None
    return on_conflict


def is_equal(requested: CreateClientGrant, actual: Grant) -> bool:
    """Whether `actual` is what creating `requested` makes (in Auth0's meaning)."""
    return differences(requested, actual) is None


def _set_difference(
    found: dict[str, Any], name: str, want: frozenset[str], have: frozenset[str]
) -> None:
    if want != have:
        found[name] = {"missing": sorted(want - have), "extra": sorted(have - want)}


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
