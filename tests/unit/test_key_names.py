"""No Redis key is spelled outside tasks/keys.py: worker/ and bench/ name keys through `Keys`.

A key spelled twice drifts: a renamed key, or a new prefix, would leave one reader looking at
a key nobody writes. The scan reads the source (not the running code), so a key built in a
branch no test runs is caught too. It looks for what a key built by hand looks like:

- a literal that starts with the name of a key (`"batch:"`, `"heartbeat:"`, `":heartbeat"`)
  joined to something else (`+`, an f-string);
- a constant named `…_KEY` holding such a name (`BREAKER_KEY = "breaker"`);
- the key prefix (`keys.prefix`, `settings.grants_key_prefix`) joined into a string;
- a literal with a separated key name anywhere in it (`"grants:batch-rows:b1"`).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from grant_worker.tasks.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("worker", "bench")
PROBE_PREFIX = "PROBEPREFIX:"


def key_names() -> set[str]:
    """The first part of every name `Keys` builds: `results`, `batch:`, `heartbeat:`, …"""
    keys = Keys(PROBE_PREFIX)
    names: set[str] = set()
    for attribute, _ in inspect.getmembers(Keys):
        if attribute.startswith("_") or attribute in ("prefix", "pattern"):
            continue
        value = getattr(keys, attribute)
        if callable(value):
            value = value(*["x"] * len(inspect.signature(value).parameters))
        for name in value if isinstance(value, tuple) else (value,):
            if name.startswith(PROBE_PREFIX):
                stem = re.match(r"[A-Za-z_\-]+:?", name[len(PROBE_PREFIX) :])
                assert stem is not None, name
                names.add(stem.group(0))
    return names


NAMES = key_names()
BARE = {name.rstrip(":") for name in NAMES}
SEPARATED = re.compile(
    r"(?<![A-Za-z0-9_\-])("
    + "|".join(re.escape(n) for n in NAMES if n.endswith(":"))
    + r")(?=[^\s:])"
)


def _starts_with_a_key_name(text: str) -> bool:
    word = re.match(r"[A-Za-z_\-]+", text.removeprefix(":"))
    return word is not None and word.group(0) in BARE


def _is_the_prefix(node: ast.AST) -> bool:
    if isinstance(node, ast.FormattedValue):
        node = node.value
    return (isinstance(node, ast.Attribute) and node.attr in ("prefix", "grants_key_prefix")) or (
        isinstance(node, ast.Name) and node.id in ("prefix", "key_prefix")
    )


def _docstrings(tree: ast.AST) -> set[int]:
    """Ids of the string statements (docstrings and the like): prose, not keys."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def _concatenated(node: ast.BinOp) -> list[ast.expr]:
    parts: list[ast.expr] = []
    for side in (node.left, node.right):
        if isinstance(side, ast.BinOp) and isinstance(side.op, ast.Add):
            parts.extend(_concatenated(side))
        else:
            parts.append(side)
    return parts


def spelled_keys(source: str) -> list[tuple[int, str]]:
    """(line, why) for every place in `source` that looks like a Redis key built by hand."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)
    prose = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            pieces = [v.value for v in node.values if isinstance(v, ast.Constant)]
            joined = [
                v.value
                for before, v in zip(node.values, node.values[1:], strict=False)
                if isinstance(before, ast.FormattedValue)
                and isinstance(v, ast.Constant)
                and isinstance(v.value, str)
            ]
            if any(_starts_with_a_key_name(p) for p in joined):
                found.append((node.lineno, "f-string joins a key name"))
            elif any(_is_the_prefix(v) for v in node.values):
                found.append((node.lineno, "f-string holds the key prefix"))
            elif any(isinstance(p, str) and SEPARATED.search(p) for p in pieces):
                found.append((node.lineno, "f-string spells a key name"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            parts = _concatenated(node)
            texts = [p.value for p in parts if isinstance(p, ast.Constant)]
            if any(isinstance(t, str) and _starts_with_a_key_name(t) for t in texts):
                found.append((node.lineno, "+ joins a key name"))
            elif any(_is_the_prefix(p) for p in parts):
                found.append((node.lineno, "+ joins the key prefix"))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            value = node.value.value
            named_key = any(
                isinstance(t, ast.Name) and t.id.upper().endswith("_KEY") for t in node.targets
            )
            if named_key and isinstance(value, str) and _starts_with_a_key_name(value):
                found.append((node.lineno, "a constant names a key"))
        elif (
            isinstance(node, ast.Constant)
            and id(node) not in prose
            and isinstance(node.value, str)
            and SEPARATED.search(node.value)
        ):
            found.append((node.lineno, "a literal spells a key name"))
    return sorted(set(found))


def test_the_scan_knows_the_names_keys_builds() -> None:
    assert {"results", "dead", "intake", "workers", "breaker", "batches"} <= NAMES
    assert {"batch:", "batch-rows:", "heartbeat:", "outcome:", "lock:"} <= NAMES


@pytest.mark.parametrize(
    "line",
    [
        'BREAKER_KEY = "breaker"',
        'key = keys.prefix + "batch-rows:" + batch_id',
        "key = self._keys.prefix + WORKERS_KEY",
        'key = f"{prefix}results"',
        'key = f"{settings.grants_key_prefix}{host}:heartbeat"',
        'key = f"{host}:heartbeat"',
        'client.delete("grants:batch:b1")',
        'client.hgetall(f"{keys.prefix}breaker")',
    ],
)
def test_the_scan_finds_a_key_built_by_hand(line: str) -> None:
    assert spelled_keys(line), line


@pytest.mark.parametrize(
    "line",
    [
        'pipe.hget(keys.breaker, "state")',
        'fields["dead"]',
        'context = {"workers": workers, "batches": batches}',
        'register_readiness_check("breaker", check)',
        'log.info("breaker probe: the tenant still refuses")',
        'text = f"grant the user ~{Keys(settings.grants_key_prefix).pattern}"',
        'pipe.hincrby(key, f"{second}:{outcome_series(status)}", 1)',
        'notice = f"purged {n} dead letters"',
        "key = keys.batch_rows(batch_id)",
    ],
)
def test_the_scan_leaves_alone_what_is_no_key(line: str) -> None:
    assert not spelled_keys(line), line


def test_no_redis_key_is_spelled_outside_tasks_keys() -> None:
    spelled = [
        f"{path.relative_to(ROOT)}:{line}: {why}"
        for folder in SCANNED
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, why in spelled_keys(path.read_text(encoding="utf-8"))
    ]
    assert spelled == [], "build these keys through tasks.keys.Keys:\n" + "\n".join(spelled)
