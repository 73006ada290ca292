"""The request envelope and grant body are validated to the letter of the contract."""

from __future__ import annotations

from typing import Any

import pytest

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.models import MAX_MESSAGE_BYTES, CreateClientGrant
from grant_worker.tasks.messages.validation import parse_request
from tests.bad_requests import (
    BAD_ENVELOPES,
    BAD_TEXTS,
    OK_GRANT,
    UTF8_METADATA_WITHIN_LIMIT,
    nested,
)


@pytest.mark.parametrize(
    ("envelope", "words"),
    [pytest.param(envelope, words, id=name) for name, envelope, words in BAD_ENVELOPES],
)
def test_each_invalid_envelope_is_refused_naming_field_and_rule(
    envelope: Any, words: list[str]
) -> None:
    with pytest.raises(RequestInvalid) as raised:
        parse_request(envelope)
    for word in words:
        assert word in raised.value.message


@pytest.mark.parametrize(
    ("text", "words"), [pytest.param(text, words, id=name) for name, text, words in BAD_TEXTS]
)
def test_each_unreadable_text_is_refused_with_the_reason(
    text: str | bytes, words: list[str]
) -> None:
    with pytest.raises(RequestInvalid) as raised:
        parse_request(text)
    for word in words:
        assert word in raised.value.message


def test_a_message_over_64_kib_is_refused_before_it_is_parsed() -> None:
    text = '{"grant": ' + " " * MAX_MESSAGE_BYTES + "}"
    with pytest.raises(RequestInvalid, match="at most 65536 bytes"):
        parse_request(text)


def test_a_minimal_request_defaults_to_keep_and_has_no_request_id() -> None:
    request = parse_request({"grant": OK_GRANT})
    assert request.on_conflict == "keep"
    assert request.request_id is None


def test_the_body_sent_to_auth0_holds_only_the_fields_that_were_set() -> None:
    request = parse_request({"grant": {**OK_GRANT, "scope": [], "allow_any_organization": False}})
    assert request.grant.body() == {**OK_GRANT, "scope": [], "allow_any_organization": False}


def test_an_empty_scope_is_allowed_with_allow_all_scopes() -> None:
    grant = CreateClientGrant.model_validate({**OK_GRANT, "scope": [], "allow_all_scopes": True})
    assert grant.allow_all_scopes is True


def test_a_default_grant_needs_no_client_id() -> None:
    request = parse_request(
        {"grant": {"default_for": "third_party_clients", "audience": "https://api.example.com/"}}
    )
    assert request.grant.client_id is None


def test_every_problem_is_reported_not_only_the_first() -> None:
    with pytest.raises(RequestInvalid) as raised:
        parse_request({"grant": {**OK_GRANT, "scope": ["", "x" * 300]}, "on_conflict": "nope"})
    assert len(raised.value.problems) == 3


def test_json_text_and_bytes_are_read_like_objects() -> None:
    text = '{"grant": {"client_id": "c", "audience": "a"}, "request_id": "r-1"}'
    assert (
        parse_request(text)
        == parse_request(text.encode())
        == parse_request({"grant": {"client_id": "c", "audience": "a"}, "request_id": "r-1"})
    )


def test_the_corpus_holds_at_least_forty_bad_inputs() -> None:
    # The reliability suite's bad-input case promises 40; this keeps the corpus honest.
    assert len(BAD_ENVELOPES) + len(BAD_TEXTS) >= 40


def test_metadata_is_counted_in_utf8_bytes_not_ascii_escaped_json() -> None:
    request = parse_request({"grant": OK_GRANT, "metadata": UTF8_METADATA_WITHIN_LIMIT})
    assert request.metadata == UTF8_METADATA_WITHIN_LIMIT


def test_metadata_nested_32_deep_is_accepted_and_33_refused() -> None:
    assert parse_request({"grant": OK_GRANT, "metadata": nested(31, {})}).metadata is not None
    with pytest.raises(RequestInvalid, match="metadata: nested more than 32 deep"):
        parse_request({"grant": OK_GRANT, "metadata": nested(32, {})})


def test_a_python_dict_nested_past_the_recursion_limit_is_refused_not_crashing() -> None:
    with pytest.raises(RequestInvalid, match="nested more than 48 deep"):
        parse_request({"grant": OK_GRANT, "metadata": nested(5000)})
