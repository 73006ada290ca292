"""Fixtures for the reliability suite: figures worth reporting are appended to
`.run/reliability-figures.jsonl` (recovery times, requests per fault kind, duplicates)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures shared with the pipeline tests
    client,
    settings,
    settings_factory,
    start_worker,
)

FIGURES = Path(__file__).resolve().parents[2] / ".run" / "reliability-figures.jsonl"


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    def record(**values: Any) -> None:
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        line = {"test": request.node.name, "at": time.strftime("%H:%M:%S"), **values}
        with FIGURES.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        print(json.dumps(line))

    return record
