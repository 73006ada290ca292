"""The dashboard's pages and actions.

GET pages are plain functions (Starlette runs them in its thread pool, where the blocking Redis
client belongs); each has a fragment the page polls with htmx. Actions are POSTs through
`security.checked_form`, and the two that change state (replay, purge) go through a
confirmation page first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from grant_worker.tasks.activity import CALL_SERIES, RATE_LIMITED_SERIES, outcome_series
from grant_worker.tasks.messages.models import is_request_id
from grant_worker.tasks.outcomes.batches import STATES
from grant_worker.tasks.outcomes.letters import DeadLetter
from grant_worker.worker.dashboard.charts import line_chart
from grant_worker.worker.dashboard.reads import STATUSES, WORKER_STALE_S
from grant_worker.worker.dashboard.security import (
    SESSION_ID,
    CsrfRefused,
    checked_form,
    client_address,
    csrf_token,
    logged_in,
    token_matches,
)
from grant_worker.worker.dashboard.sessions import NOTICE_MAX_CHARS
from grant_worker.worker.dashboard.views import (
    STATE_LABELS,
    batch_ids,
    batch_progress,
    batch_rows,
    read_limits,
    rows_needing_records,
)
from grant_worker.worker.shown import shown

log = logging.getLogger(__name__)

CHART_SECONDS = 15 * 60
ACTIONS = ("replay", "purge")
MAX_SELECTION = 100
DEAD_SHOWN = 200
ROWS_SHOWN = 500
# The most characters of one letter its own page shows.
WHOLE_CHARS = 1_000_000
FAILED_LOGIN_PAUSE_S = 1.0


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    dashboard = request.app.state.dashboard
    context = {
        "csrf": csrf_token(request),
        "logged_in": logged_in(request) is not None,
        "prefix": dashboard.settings.grants_key_prefix,
        "queue": dashboard.settings.grants_queue,
        **context,
    }
    return dashboard.templates.TemplateResponse(request, name, context, status_code=status)


def _fragment(request: Request) -> bool:
    return "hx-request" in request.headers


# -- overview -------------------------------------------------------------------------------


def overview_context(request: Request) -> dict[str, Any]:
    dashboard = request.app.state.dashboard
    reads = dashboard.reads
    now = time.time()
    start, series = reads.activity(now, CHART_SECONDS)
    pace = reads.pace()
    learned = pace if pace.learned else None
    ceiling = learned.rate if learned is not None else None
    configured = _configured_rate(dashboard.settings)
    outcomes = line_chart({status: series[outcome_series(status)] for status in STATUSES})
    calls = line_chart(
        {"calls": series[CALL_SERIES], "429": series[RATE_LIMITED_SERIES]},
        ceiling=ceiling or configured,
    )
    return {
        "now": now,
        "chart_start": start,
        "outcomes_chart": outcomes,
        "calls_chart": calls,
        "learned": learned,
        "paused_until": pace.pause_until,
        "configured_rate": configured,
        "queue_depth": reads.queue_depth(),
        "in_flight": reads.in_flight(),
        "results_count": reads.results_count(),
        "dead_count": reads.dead_count(),
        "breaker": reads.breaker(),
        "workers": reads.workers(),
        "stale_s": WORKER_STALE_S,
    }


def _configured_rate(settings: Any) -> float | None:
    value = getattr(settings, "grants_rate_limit", None)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def overview(request: Request) -> Response:
    template = "_overview.html" if _fragment(request) else "overview.html"
    return _render(request, template, overview_context(request))


# -- batches --------------------------------------------------------------------------------


def batches(request: Request) -> Response:
    reads = request.app.state.dashboard.reads
    now = time.time()
    snapshot = reads.snapshot()
    ids = reads.active_batches()
    if ids is None:
        ids = batch_ids(snapshot)
    ledgers = reads.batch_ledgers(ids[:20])
    progress = [batch_progress(b, snapshot, ledgers.get(b), now) for b in ids[:20]]
    template = "_batches.html" if _fragment(request) else "batches.html"
    columns = [(state, STATE_LABELS.get(state, state)) for state in STATES]
    return _render(request, template, {"batches": progress, "columns": columns})


def batch(request: Request) -> Response:
    reads = request.app.state.dashboard.reads
    batch_id = request.path_params["batch_id"]
    snapshot = reads.snapshot(batch_id)
    progress = batch_progress(batch_id, snapshot, reads.batch_ledger(batch_id), time.time())
    row_states = reads.batch_row_states(batch_id)
    records, cut_from, unread = None, None, 0
    if row_states is not None:
        wanted = rows_needing_records(snapshot, batch_id, row_states, ROWS_SHOWN)
        heads = reads.outcome_record_heads(wanted)
        records, cut_from, unread = heads.outcomes, heads.cut_from, heads.unread
    rows = batch_rows(snapshot, batch_id, row_states, records, cut_from)
    template = "_batch.html" if _fragment(request) else "batch.html"
    context = {
        "batch": progress,
        "rows": rows[:ROWS_SHOWN],
        "rows_seen": len(rows),
        "limits": read_limits(snapshot, unread),
    }
    return _render(request, template, context)


# -- dead letters ---------------------------------------------------------------------------


def dead(request: Request) -> Response:
    reads = request.app.state.dashboard.reads
    code = request.query_params.get("code", "")
    batch_filter = request.query_params.get("batch", "")
    window = reads.dead_letters(code=code, batch_id=batch_filter)
    context = {
        "letters": window.letters[:DEAD_SHOWN],
        "matching": len(window.letters),
        "window": window.read,
        "total": reads.dead_count(),
        "codes": window.codes,
        "batches": window.batches,
        "code": code,
        "batch_filter": batch_filter,
        "notice": _pop_notice(request),
    }
    return _render(request, "dead.html", context)


def dead_letter(request: Request) -> Response:
    """One dead letter whole, as indented JSON: what the list cuts. Bounded too (a letter may
    hold any request a producer sent); `grants dlq show` prints all of it."""
    entry_id = request.path_params["entry_id"]
    letter = (
        request.app.state.dashboard.reads.dead_letter(entry_id) if _entry_id(entry_id) else None
    )
    if letter is None:
        return PlainTextResponse("no such dead letter", status_code=404)
    return _render(request, "dead_letter.html", {"letter": letter, "limit": WHOLE_CHARS})


def _selected(request: Request, ids: list[str]) -> list[DeadLetter]:
    reads = request.app.state.dashboard.reads
    found = (reads.dead_letter(entry_id) for entry_id in ids[:MAX_SELECTION] if _entry_id(entry_id))
    return [letter for letter in found if letter is not None]


def _entry_id(text: str) -> bool:
    milliseconds, _, sequence = text.partition("-")
    return milliseconds.isdigit() and sequence.isdigit()


async def dead_confirm(request: Request) -> Response:
    """Step one of an action: show what would be replayed or purged, ask to confirm."""
    try:
        form = await checked_form(request)
    except CsrfRefused as exc:
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    one = form.get("one")
    # A row's own Replay button takes that row alone, whatever else is ticked.
    action = "replay" if one else form.get("action")
    if action not in ACTIONS:
        return PlainTextResponse("action: must be replay or purge", status_code=400)
    ids = [str(one)] if one else [str(value) for value in form.getlist("id")]
    wanted = [entry_id for entry_id in ids[:MAX_SELECTION] if _entry_id(entry_id)]
    letters, unread = await run_in_threadpool(
        request.app.state.dashboard.reads.dead_letter_heads, wanted
    )
    if not letters:
        _set_notice(request, "nothing selected")
        return RedirectResponse(_back_to_list(form), status_code=303)
    context = {
        "action": action,
        "letters": letters,
        "unread": unread,
        "code": form.get("code", ""),
        "batch_filter": form.get("batch", ""),
        "back": _back_to_list(form),
    }
    return _render(request, "confirm.html", context)


def _back_to_list(form: Any) -> str:
    """The dead-letter list with the filters the operator had set."""
    filters = {name: str(form.get(name)) for name in ("code", "batch") if form.get(name)}
    return "/dead" + (f"?{urlencode(filters)}" if filters else "")


async def dead_act(request: Request) -> Response:
    """Step two: do it, then back to the list with what happened."""
    try:
        form = await checked_form(request)
    except CsrfRefused as exc:
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    action = form.get("action")
    if action not in ACTIONS or form.get("confirm") != "yes":
        return PlainTextResponse("action: confirm a replay or a purge", status_code=400)
    ids = [str(value) for value in form.getlist("id")]
    notice = await run_in_threadpool(_act, request, str(action), ids)
    await run_in_threadpool(_set_notice, request, notice)
    return RedirectResponse(_back_to_list(form), status_code=303)


def _act(request: Request, action: str, ids: list[str]) -> str:
    operations = request.app.state.dashboard.dead_letters
    letters = _selected(request, ids)
    if action == "purge":
        return f"purged {operations.purge(letters)} dead letters"
    results = operations.replay(letters)
    replayed = [r.request_id for r in results if r.action == "replayed"]
    invalid = [f"{r.request_id} ({r.reason})" for r in results if r.action == "invalid"]
    notice = f"replayed {len(replayed)}: {', '.join(replayed)}" if replayed else "replayed none"
    if invalid:
        notice += f"; still invalid, kept: {', '.join(invalid)}"
    return notice


def _set_notice(request: Request, notice: str) -> None:
    """What an action did, for the next page: server-side once logged in, else in the cookie,
    and cut either way (a cookie of hundreds of ids is one browsers drop)."""
    if (session := logged_in(request)) is not None:
        request.app.state.dashboard.sessions.set_notice(session.session_id, notice)
    else:
        short = notice if len(notice) <= NOTICE_MAX_CHARS else notice[: NOTICE_MAX_CHARS - 1]
        request.session["notice"] = short if short == notice else short + "…"


def _pop_notice(request: Request) -> str | None:
    if (session := logged_in(request)) is not None:
        return request.app.state.dashboard.sessions.pop_notice(session.session_id)
    notice = request.session.pop("notice", None)
    return notice if isinstance(notice, str) else None


# -- search ---------------------------------------------------------------------------------


def search(request: Request) -> Response:
    reads = request.app.state.dashboard.reads
    request_id = request.query_params.get("request_id", "").strip()
    context: dict[str, Any] = {"request_id": request_id, "searched": bool(request_id)}
    if request_id and not is_request_id(request_id):
        context["problem"] = "request_id: 1-128 characters of A-Z a-z 0-9 . _ : -"
    elif request_id:
        outcomes, letters = reads.history(request_id)
        context.update(
            record=reads.outcome_record(request_id),
            state=reads.request_state(request_id),
            outcomes=outcomes,
            letters=letters,
        )
    template = "_search.html" if _fragment(request) else "search.html"
    return _render(request, template, context)


# -- login ----------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    dashboard = request.app.state.dashboard
    if not dashboard.token:
        return RedirectResponse("/", status_code=303)
    if request.method == "GET":
        return _render(request, "login.html", {"failed": False})
    try:
        form = await checked_form(request)
    except CsrfRefused as exc:
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    sessions = dashboard.sessions
    who = client_address(request)
    if not await run_in_threadpool(sessions.login_allowed, who):
        log.warning("dashboard login refused: too many wrong tokens lately (from %s)", shown(who))
        return _render(request, "login.html", {"failed": True, "throttled": True}, status=429)
    given = form.get("token")
    if not isinstance(given, str) or not given.strip() or not token_matches(given, dashboard.token):
        log.warning("dashboard login failed: wrong token (from %s)", shown(who))
        # A pause per wrong guess, and the count above across requests, make guessing slow.
        await asyncio.sleep(FAILED_LOGIN_PAUSE_S)
        return _render(request, "login.html", {"failed": True}, status=401)
    await run_in_threadpool(sessions.forget_attempts, who)
    session = await run_in_threadpool(sessions.open, dashboard.token)
    request.session.clear()
    request.session[SESSION_ID] = session.session_id
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    try:
        await checked_form(request)
    except CsrfRefused as exc:
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    await run_in_threadpool(
        request.app.state.dashboard.sessions.end, request.session.get(SESSION_ID)
    )
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


ROUTES: list[tuple[str, Any, list[str]]] = [
    ("/", overview, ["GET"]),
    ("/batches", batches, ["GET"]),
    ("/batches/{batch_id:path}", batch, ["GET"]),
    ("/dead", dead, ["GET"]),
    ("/dead/confirm", dead_confirm, ["POST"]),
    ("/dead/act", dead_act, ["POST"]),
    ("/dead/{entry_id}", dead_letter, ["GET"]),
    ("/search", search, ["GET"]),
    ("/login", login, ["GET", "POST"]),
    ("/logout", logout, ["POST"]),
]
