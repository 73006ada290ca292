"""Pure parts of the dashboard: chart geometry and batch progress from a snapshot."""

from __future__ import annotations

from typing import Any

from grant_worker.tasks.outcomes.batches import STATES, BatchView
from grant_worker.tasks.outcomes.windows import RecentOutcome, Snapshot
from grant_worker.worker.dashboard.charts import line_chart, nice_ceiling
from grant_worker.worker.dashboard.views import batch_progress, batch_rows, human_seconds

NOW = 1_800_000_000.0


def outcome(request_id: str, status: str, at: float, **extra: Any) -> RecentOutcome:
    entry_id = f"{int(at * 1000)}-0"
    return RecentOutcome(
        entry_id, {"request_id": request_id, "status": status, "batch_id": "b", **extra}
    )


def ledger(
    total: int,
    queued: int,
    *,
    first_ms: int | None = None,
    last_ms: int | None = None,
    **ended: int,
) -> BatchView:
    """A batch ledger as `tasks.outcomes.batches.read_batch` reads it."""
    return BatchView(
        batch_id="b",
        total=total,
        queued=queued,
        in_flight=0,
        **{state: ended.get(state, 0) for state in STATES},
        first_enqueued_at=None,
        first_outcome_at=first_ms / 1000 if first_ms is not None else None,
        last_outcome_at=last_ms / 1000 if last_ms is not None else None,
    )


def snapshot(recent: list[RecentOutcome], pending: set[str] | None = None, **kw: Any) -> Snapshot:
    values: dict[str, Any] = {
        "depth": len(pending or ()),
        "in_flight": 0,
        "queued": [],
        "unacked": [],
        "unacked_read": True,
        "recent": recent,
        "window_full": False,
        "pending_ids_by_batch": {"b": pending} if pending else {},
    }
    values.update(kw)
    return Snapshot(**values)


def test_nice_ceiling_rounds_up_to_1_2_5() -> None:
    assert [nice_ceiling(v) for v in (0, 0.4, 3, 7, 12, 40, 51)] == [1, 1, 5, 10, 20, 50, 100]


def test_chart_points_one_per_second_and_the_limit_line() -> None:
    chart = line_chart({"calls": [0, 10, 20], "429": [0, 0, 0]}, ceiling=40, height=100)

    assert [line.name for line in chart.lines] == ["calls"]  # all-zero series left out
    assert chart.lines[0].points == "0,100.0 1,80.0 2,60.0"
    assert chart.y_max == 50 and chart.ceiling_y == 20.0


def test_progress_from_a_ledger_counts_what_the_ledger_says() -> None:
    # Ten requests: five ended, five still enqueued (`queued`, as the ledger counts them).
    recent = [outcome(f"r{n}", "created", NOW - n) for n in range(5)]

    progress = batch_progress("b", snapshot(recent), ledger(10, 5, created=4, failed=1), NOW)

    assert (progress.done, progress.total, progress.pending, progress.percent) == (5, 10, 5, 50)
    assert progress.source == "ledger"
    assert progress.rate_per_s == 5 / 4 and progress.eta_s == 4.0


def test_estimate_counts_a_replayed_request_once_as_pending() -> None:
    # r1 failed, was replayed and is back on the queue: it is pending, not done twice.
    recent = [outcome("r2", "created", NOW - 1), outcome("r1", "failed", NOW - 2)]

    progress = batch_progress("b", snapshot(recent, pending={"r1", "r3"}), None, NOW)

    assert (progress.done, progress.pending, progress.total) == (1, 2, 3)
    assert progress.source == "estimate" and progress.notes


def test_estimate_says_when_the_queue_was_not_read_whole() -> None:
    progress = batch_progress("b", snapshot([], pending={"r1"}, depth=5000), None, NOW)

    assert any("longer than the part read" in note for note in progress.notes)


def test_estimate_marks_counts_as_lower_bounds_when_the_window_cut_the_batch() -> None:
    recent = [outcome("r2", "created", NOW - 1), outcome("r1", "created", NOW - 2)]

    progress = batch_progress("b", snapshot(recent, window_full=True), None, NOW)

    assert progress.partial and progress.done == 2


def test_rows_put_failed_and_differing_first() -> None:
    recent = [
        outcome("a", "created", NOW),
        outcome("b", "exists", NOW, differences={"scope": ["x"]}),
        outcome("c", "failed", NOW, error={"code": "not_found", "message": "no"}),
        outcome("d", "exists", NOW),
    ]

    rows = batch_rows(snapshot(recent, pending={"e"}), "b")

    assert [(r.request_id, r.state) for r in rows] == [
        ("c", "failed"),
        ("b", "exists, differs"),
        ("d", "exists"),
        ("a", "created"),
        ("e", "pending"),
    ]


def test_human_seconds() -> None:
    assert [human_seconds(s) for s in (None, 4.4, 75, 7300)] == [
        "unknown",
        "4 s",
        "1 min 15 s",
        "2 h 1 min",
    ]


def test_progress_from_the_ledger_counts_every_state_and_the_queued() -> None:
    counts = ledger(10, 3, created=4, exists_differs=2, cancelled=1, first_ms=1_000, last_ms=7_000)

    progress = batch_progress("b", snapshot([]), counts, NOW)

    assert (progress.done, progress.pending, progress.percent) == (7, 3, 70)
    # No outcome in the last minute: the batch's own average pace, 6 gaps in 6 s.
    assert progress.rate_per_s == 1.0 and progress.eta_s == 3.0


def test_rows_from_the_ledger_list_every_row_with_details_from_records() -> None:
    states = {"a": "created", "b": "exists_differs", "c": "failed", "d": "queued"}
    records = {"c": {"status": "failed", "error": {"code": "not_found", "message": "gone"}}}

    rows = batch_rows(snapshot([]), "b", states, records)

    assert [(r.request_id, r.state, r.code) for r in rows] == [
        ("c", "failed", "not_found"),
        ("b", "exists, differs", ""),
        ("a", "created", ""),
        ("d", "pending", ""),
    ]
