"""Charts as inline SVG, computed on the server: pure geometry, no JavaScript.

One unit of the x axis is one second, so a quarter of an hour is 900 units wide and each
point is an integer pair; the browser scales the `viewBox` to the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

HEIGHT = 160


@dataclass(frozen=True)
class Line:
    name: str
    points: str
    total: int
    last: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    y_max: float
    lines: list[Line]
    ceiling: float | None
    ceiling_y: float | None

    @property
    def y_mid(self) -> float:
        return self.y_max / 2


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^n at or above `value` (at least 1): a readable y range."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def line_chart(
    series: dict[str, Sequence[float]], *, ceiling: float | None = None, height: int = HEIGHT
) -> Chart:
    """Polylines for `series` (one value per second, equal lengths), all-zero series left out.

    `ceiling` (e.g. the tenant's learned limit) is drawn as a horizontal line and counts in
    the y range, so the line and the calls can be compared at a glance.
    """
    width = max((len(values) for values in series.values()), default=0)
    peak = max((max(values, default=0) for values in series.values()), default=0)
    y_max = nice_ceiling(max(peak, ceiling or 0))
    lines = []
    for name, values in series.items():
        if not any(values):
            continue
        points = " ".join(f"{x},{_y(value, y_max, height)}" for x, value in enumerate(values))
        lines.append(Line(name, points, int(sum(values)), float(values[-1])))
    ceiling_y = _y(ceiling, y_max, height) if ceiling else None
    return Chart(max(width - 1, 1), height, y_max, lines, ceiling, ceiling_y)


def _y(value: float, y_max: float, height: int) -> float:
    return round(height - value / y_max * height, 1)
