"""The tenant's client grants in memory: uniqueness, lookups, pagination (pure, no HTTP).

Grants are kept in creation order, which is the order Auth0 lists them in. Each grant gets a
sequence number at creation; checkpoint pagination hands out the next sequence number as an
opaque `next` token, so deleting grants between pages never skips or repeats one.
"""

from __future__ import annotations

import base64
import binascii
import random
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ID_PREFIX = "cgr_"
ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 16

# The key order Auth0 responses were observed in (tests/data/recordings).
RESPONSE_ORDER = (
    "id",
    "client_id",
    "audience",
    "scope",
    "organization_usage",
    "allow_any_organization",
    "is_system",
    "subject_type",
    "default_for",
    "authorization_details_types",
    "allow_all_scopes",
)
# Fields a grant may hold besides its identity (id, owner, audience, subject type).
SETTABLE = (
    "scope",
    "organization_usage",
    "allow_any_organization",
    "authorization_details_types",
    "allow_all_scopes",
)

GrantKey = tuple[str, str, str]


def grant_key(
    client_id: str | None, default_for: str | None, audience: str, subject_type: str
) -> GrantKey:
    """The uniqueness key: (owner, audience, subject_type); a default grant's owner is
    `default_for:<group>`."""
    owner = client_id if client_id is not None else f"default_for:{default_for}"
    return (owner, audience, subject_type)


def format_key(key: GrantKey) -> str:
    """The key as one string, `owner|audience|subject_type` (used by the admin counters)."""
    return "|".join(key)


@dataclass
class Grant:
    """One client grant. Optional fields are None when never set, so they are not echoed."""

    id: str
    seq: int
    audience: str
    subject_type: str
    client_id: str | None = None
    default_for: str | None = None
    is_system: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # only fields from SETTABLE

    @property
    def key(self) -> GrantKey:
        return grant_key(self.client_id, self.default_for, self.audience, self.subject_type)

    @property
    def scope(self) -> list[str]:
        return list(self.settings.get("scope") or [])

    def to_json(self) -> dict[str, Any]:
        """The grant as Auth0 returns it: only fields that were set, in Auth0's key order."""
        values: dict[str, Any] = {
            "id": self.id,
            "client_id": self.client_id,
            "audience": self.audience,
            "is_system": True if self.is_system else None,
            "subject_type": self.subject_type,
            "default_for": self.default_for,
            **self.settings,
        }
        if values.get("allow_all_scopes") is True:
            values["scope"] = None
        return {
            name: _copy(values[name]) for name in RESPONSE_ORDER if values.get(name) is not None
        }


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


class DuplicateGrant(Exception):
    """Raised when a grant with the same (owner, audience, subject_type) already exists."""

    def __init__(self, existing: Grant) -> None:
        super().__init__(format_key(existing.key))
        self.existing = existing


class BadCheckpoint(ValueError):
    """Raised when a `from` value is neither a `next` token nor an existing grant id."""


class GrantStore:
    """Grants by id, unique by key, in creation order.

    `rng` makes generated ids reproducible when seeded; ids are `cgr_` + 16 alphanumerics.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._by_id: dict[str, Grant] = {}
        self._by_key: dict[GrantKey, str] = {}
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Grant]:
        return iter(list(self._by_id.values()))

    def clear(self) -> None:
        self._by_id.clear()
        self._by_key.clear()

    def new_id(self) -> str:
        while True:
            candidate = ID_PREFIX + "".join(self._rng.choices(ID_ALPHABET, k=ID_LENGTH))
            if candidate not in self._by_id:
                return candidate

    def find(self, key: GrantKey) -> Grant | None:
        grant_id = self._by_key.get(key)
        return None if grant_id is None else self._by_id[grant_id]

    def get(self, grant_id: str) -> Grant | None:
        return self._by_id.get(grant_id)

    def add(
        self,
        *,
        audience: str,
        subject_type: str,
        client_id: str | None = None,
        default_for: str | None = None,
        settings: Mapping[str, Any] | None = None,
        is_system: bool = False,
        grant_id: str | None = None,
    ) -> Grant:
        """Store a new grant. Raises DuplicateGrant if its key (or given id) is taken."""
        key = grant_key(client_id, default_for, audience, subject_type)
        existing = self.find(key)
        if existing is not None:
            raise DuplicateGrant(existing)
        if grant_id is not None and grant_id in self._by_id:
            raise DuplicateGrant(self._by_id[grant_id])
        grant = Grant(
            id=grant_id or self.new_id(),
            seq=self._next_seq,
            audience=audience,
            subject_type=subject_type,
            client_id=client_id,
            default_for=default_for,
            is_system=is_system,
            settings={k: _copy(v) for k, v in (settings or {}).items() if v is not None},
        )
        self._next_seq += 1
        self._by_id[grant.id] = grant
        self._by_key[key] = grant.id
        return grant

    def update(self, grant_id: str, changes: Mapping[str, Any]) -> Grant:
        """Apply a PATCH: a None value removes the field; allow_all_scopes true drops scope.

        Raises KeyError for an unknown id.
        """
        grant = self._by_id[grant_id]
        for name, value in changes.items():
            if value is None:
                grant.settings.pop(name, None)
            else:
                grant.settings[name] = _copy(value)
        if grant.settings.get("allow_all_scopes") is True:
            grant.settings.pop("scope", None)
        return grant

    def delete(self, grant_id: str) -> bool:
        """Remove a grant; False if there was none (deleting is idempotent at the API)."""
        grant = self._by_id.pop(grant_id, None)
        if grant is None:
            return False
        del self._by_key[grant.key]
        return True

    def select(self, filters: Mapping[str, Any]) -> list[Grant]:
        """Grants matching every filter (attribute equality), in creation order."""
        return [g for g in self._by_id.values() if _matches(g, filters)]

    def page_offset(
        self, filters: Mapping[str, Any], page: int, per_page: int, first: Sequence[Grant] = ()
    ) -> tuple[list[Grant], int]:
        """One offset page and the total number of matches (`first` listed before the store)."""
        matches = [g for g in first if _matches(g, filters)] + self.select(filters)
        start = page * per_page
        return matches[start : start + per_page], len(matches)

    def page_checkpoint(
        self,
        filters: Mapping[str, Any],
        from_: str | None,
        take: int,
        first: Sequence[Grant] = (),
    ) -> tuple[list[Grant], str | None]:
        """One checkpoint page and the `next` token, None on the last page.

        `from_` is a token from an earlier page or a grant id to start at. `first`: grants
        kept outside the store, listed before it (negative seqs). Raises BadCheckpoint.
        """
        start_seq = -(2**31) if from_ is None else self._resolve_checkpoint(from_)
        listed = [g for g in first if _matches(g, filters)] + self.select(filters)
        matches = [g for g in listed if g.seq >= start_seq]
        if len(matches) <= take:
            return matches, None
        return matches[:take], _encode_checkpoint(matches[take].seq)

    def _resolve_checkpoint(self, from_: str) -> int:
        if from_ in self._by_id:
            return self._by_id[from_].seq
        try:
            decoded = base64.urlsafe_b64decode(from_.encode()).decode()
            if not decoded.startswith("seq:"):
                raise BadCheckpoint(from_)
            return int(decoded.removeprefix("seq:"))
        except (ValueError, binascii.Error) as exc:
            raise BadCheckpoint(from_) from exc


def _encode_checkpoint(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def _matches(grant: Grant, filters: Mapping[str, Any]) -> bool:
    for name, wanted in filters.items():
        actual = grant.settings.get(name) if name in SETTABLE else getattr(grant, name)
        if actual != wanted:
            return False
    return True
