"""Assertions shared by the reliability scenarios: exactly one outcome, no grant twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.models import Outcome


def outcomes_by_request(client: redis.Redis, results_key: str) -> dict[str, list[Outcome]]:
    found: dict[str, list[Outcome]] = {}
    for _entry_id, fields in client.xrange(results_key):
        found.setdefault(fields["request_id"], []).append(
            Outcome.model_validate_json(fields["outcome"])
        )
    return found


def assert_exactly_one_outcome_each(
    client: redis.Redis, results_key: str, request_ids: list[str]
) -> dict[str, Outcome]:
    found = outcomes_by_request(client, results_key)
    missing = [rid for rid in request_ids if rid not in found]
    doubled = {rid: len(items) for rid, items in found.items() if len(items) > 1}
    assert not missing, f"{len(missing)} requests have no outcome, e.g. {missing[:3]}"
    assert not doubled, f"requests with more than one outcome: {doubled}"
    return {rid: items[0] for rid, items in found.items()}


def grant_duplicates(grants: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """(client, audience, subject type) keys stored more than once in the emulator."""
    keys = Counter(
        (
            g.get("client_id") or f"default_for:{g.get('default_for')}",
            g["audience"],
            g.get("subject_type", "client"),
        )
        for g in grants
    )
    return {key: n for key, n in keys.items() if n > 1}


def shipped_defaults() -> dict[str, Any]:
    """The shipped defaults of the settings the test fixtures shorten (`make_settings`): for
    scenarios whose goal is stated at default settings."""
    fields = Settings.model_fields
    names = (
        "grants_retry_budget_s",
        "grants_concurrency",
        "grants_restore_interval_s",
        "grants_rate_limit",
    )
    return {name: fields[name].default for name in names}
