"""The bounded decoder every door uses: size and depth checked before `json` recurses."""

from __future__ import annotations

import json
import time

import pytest

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.decoding import (
    decode_json,
    nesting_depth,
    safe_request_id,
)
from grant_worker.tasks.messages.limits import json_size, nesting_depth_of
from tests.bad_requests import nested, nested_text


def test_depth_ignores_brackets_inside_strings() -> None:
    assert nesting_depth('{"a": "[[[{", "b": [{"c": "\\"]]"}]}') == 3
    assert nesting_depth("") == 0
    assert nesting_depth("[[]]") == 2


def test_depth_of_a_decoded_value_without_recursion() -> None:
    assert nesting_depth_of(nested(3)) == 3
    assert nesting_depth_of([]) == 1
    assert nesting_depth_of(nested(100_000), stop_at=50) == 51
    assert nesting_depth_of({"a": 1, "b": [2, {"c": (3, [])}], "d": "[[["}) == 5
    assert nesting_depth_of("scalar") == 0


def test_json_size_counts_compact_utf8_bytes() -> None:
    value = {"id": "é", "n": [1, 2.5, None, True], "s": "\u202e"}
    expected = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    assert json_size(value) == expected == 43
    with pytest.raises(TypeError):
        json_size({"x": object()})


@pytest.mark.parametrize("depth", [1200, 30_000])
def test_a_document_nested_deeper_than_any_decoder_bears_is_refused_unread(depth: int) -> None:
    with pytest.raises(RequestInvalid, match=f"nested {depth} deep, at most 48"):
        decode_json(nested_text(depth))


def test_the_depth_limit_holds_at_its_edge_and_brackets_inside_strings_do_not_count() -> None:
    assert decode_json(nested_text(48)) == json.loads(nested_text(48))
    with pytest.raises(RequestInvalid, match="nested 49 deep, at most 48"):
        decode_json(nested_text(49))
    shallow = json.dumps({"a": "[{" * 100, "b": [[{"c": 1}]]})
    assert decode_json(shallow) == json.loads(shallow)


def test_the_size_limit_counts_utf8_bytes_of_text() -> None:
    text = json.dumps({"a": "é" * 40_000}, ensure_ascii=False)  # 80,000 bytes, 40,010 chars
    with pytest.raises(RequestInvalid, match="at most 65536 bytes"):
        decode_json(text)


def test_hostile_unterminated_strings_are_scanned_in_linear_time() -> None:
    hostile = '"\\"' * 20_000  # quadratic for a naive string pattern
    started = time.perf_counter()
    with pytest.raises(RequestInvalid):
        decode_json(hostile)
    # Not a benchmark: a quadratic scan takes minutes here, a linear one milliseconds.
    assert time.perf_counter() - started < 5


def test_within_limits_it_decodes() -> None:
    assert decode_json(b'{"a": [1, 2]}') == {"a": [1, 2]}


def test_invalid_utf8_and_json_are_problems_naming_what() -> None:
    with pytest.raises(RequestInvalid, match="intake: not valid UTF-8"):
        decode_json(b"\xff", what="intake")
    with pytest.raises(RequestInvalid, match="intake: not valid JSON"):
        decode_json("{", what="intake")


@pytest.mark.parametrize("bad", ["id\u202eevil", "x" * 4_000_000, "a b", "", "id\n"])
def test_a_task_id_against_the_rule_becomes_a_stable_derived_id(bad: str) -> None:
    derived = safe_request_id(bad)
    assert derived.startswith("invalid-id-") and len(derived) == len("invalid-id-") + 32
    assert derived == safe_request_id(bad)
    assert safe_request_id("onb-7f3a:1") == "onb-7f3a:1"
