"""The dashboard's pages: Tasks (``/``), Runs, a run, Accounts; server-rendered with Jinja2.

Invariants:

- **Nothing blocks the loop.** Every table read goes through ``ServeState.db`` and every template
  render (a 500-account run page is a large render) through ``to_thread``; templates are compiled
  once, at import.
- **Escaped everywhere**: autoescape is on, and nothing is marked safe but the report's timeline
  (``warmup.report.render.timeline_html``, which escapes every value itself).
- **No inline script, no ``on*=``** (the CSP is ``script-src 'self'``): behaviour is ``/static/app.js``,
  and what it needs is in ``data-*`` attributes. Each page's ``<body data-position=P>`` is the core
  tables' checkpoint: the page follows ``/api/events?follow=1&from=P``, the events its rows do not
  hold yet, so it applies each event once.
- **Forms carry the CSRF token**; a POST without a valid one is a 403 and changes nothing.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from anyio import to_thread
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from warmup.report.data import IMAGE_KINDS, THUMBNAIL, TRACE
from warmup.report.render import STYLE as REPORT_STYLE
from warmup.report.render import fmt_ts
from warmup.runs.origin import DASHBOARD, RunOrigin
from warmup.serve import queries
from warmup.serve.control import Problem, cancel_run, start_run
from warmup.serve.security import csrf_token, require_form_csrf
from warmup.serve.state import ServeState, serve_state
from warmup.serve.timeline import TIMELINES
from warmup.status import STATUS_STYLE
from warmup.tasks import SAFE_ID

TEMPLATES = Path(__file__).parent / "templates"
ACCOUNTS_PER_PAGE = 200


def _artifact_url(path: str) -> str:
    return "/artifacts/" + quote(path, safe="/")


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters.update(ts=lambda ts: fmt_ts(ts) if ts else "", artifact_url=_artifact_url, pct=_pct,
                   first_letter=lambda s: (s or "?")[:1])
PAGES: dict[str, Template] = {name: ENV.get_template(f"{name}.html") for name in (
    "tasks", "runs", "run", "starting", "timeline", "accounts", "message")}


async def _page(name: str, code: int = 200, /, **context: Any) -> HTMLResponse:
    """``PAGES[name]`` rendered in a worker thread; ``position`` None and no error unless given."""
    context.setdefault("position", None)
    context.setdefault("error", None)
    context.setdefault("nav", "")
    context.setdefault("page", name)
    template = PAGES[name]
    text = await to_thread.run_sync(lambda: template.render(**context))
    return HTMLResponse(text, status_code=code)


async def message(heading: str, text: str, status: int) -> HTMLResponse:
    return await _page("message", status, heading=heading, message=text)


async def forbidden() -> HTMLResponse:
    return await message("Refused", "This form has no valid CSRF token: reload the page and try again.", 403)


# -- tasks -------------------------------------------------------------------------------------
async def tasks_page(request: Request, *, error: str | None = None, status: int = 200) -> HTMLResponse:
    state = serve_state(request)
    entries = await state.tasks()
    data = await state.db(queries.tasks_page, [e.id for e in entries if e.task is not None])
    rows = []
    for entry in entries:
        item = entry.summary()
        schedule = getattr(entry.task, "schedule", None)
        fire = state.next_fire(entry.id) if entry.task is not None else None
        item.update(
            last=data["last"].get(entry.id) if entry.task is not None else None,
            running=state.launcher.running(entry.id),
            schedule=getattr(schedule, "cron", None), timezone=getattr(schedule, "timezone", None),
            next_run=fmt_ts(fire.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")) if fire is not None else None,
        )
        rows.append(item)
    return await _page("tasks", status, nav="tasks", tasks=rows, tasks_dir=str(state.config.tasks_dir),
                       csrf=csrf_token(request), position=data["position"], error=error)


async def start_task(request: Request) -> Response:
    form = await require_form_csrf(request)
    if form is None:
        return await forbidden()
    state = serve_state(request)
    try:
        launch = await start_run(state, request.path_params["task_id"], RunOrigin(DASHBOARD),
                                 retry_failed=form.get("retry_failed") == "1")
    except Problem as problem:
        return await tasks_page(request, error=problem.message, status=problem.status)
    return RedirectResponse(f"/runs/{launch.run_id}", status_code=303)


# -- runs --------------------------------------------------------------------------------------
async def runs_page(request: Request) -> Response:
    state = serve_state(request)
    params = request.query_params
    status = (params.get("status") or "").upper() or None
    task = params.get("task") or None
    before = params.get("before") or None
    if status is not None and status not in STATUS_STYLE:
        return await message("Bad request", f"status={status[:40]!r}: one of {', '.join(STATUS_STYLE)}", 400)
    if task is not None and not SAFE_ID.match(task):
        return await message("Bad request", f"task={task[:40]!r} is not a task id", 400)
    try:
        page = await state.db(queries.list_runs, status=status, task=task, before=before, limit=50)
    except Problem as problem:
        return await message("Bad request", problem.message, problem.status)
    following = None
    if page["next"] is not None:
        query = {k: v for k, v in (("status", status), ("task", task)) if v}
        following = "/runs?" + urlencode({**query, "before": page["next"]})
    return await _page("runs", nav="runs", runs=page["runs"], next=following, status=status, task=task,
                       statuses=list(STATUS_STYLE), live=before is None, position=page["position"])


def _by_account(artifacts: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each account's screenshots (a failure's with its thumbnail's path) and traces."""
    thumbs = {(a["account_id"], a["attempt"]): a["path"] for a in artifacts if a["kind"] == THUMBNAIL}
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for a in artifacts:
        slot = out.setdefault(a["account_id"], {"shots": [], "traces": []})
        if a["kind"] in IMAGE_KINDS:
            thumb = thumbs.get((a["account_id"], a["attempt"])) if a["kind"] == "failure" else None
            slot["shots"].append({"path": a["path"], "kind": a["kind"], "thumbnail": thumb})
        elif a["kind"] == TRACE:
            slot["traces"].append({"path": a["path"], "attempt": a["attempt"]})
    return out


def _run_context(detail: dict[str, Any]) -> dict[str, Any]:
    files = _by_account(detail["artifacts"])
    accounts = []
    for row in detail["accounts"]:
        slot = files.get(row["account_id"], {"shots": [], "traces": []})
        accounts.append({**row, **slot})
    return {"run": detail["run"], "accounts": accounts}


def _is_starting(state: ServeState, run_id: str) -> bool:
    return state.launcher.knows(run_id)


async def run_page(request: Request) -> Response:
    return await _run_response(request)


async def _run_response(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    state = serve_state(request)
    run_id = request.path_params["run_id"]
    if not SAFE_ID.match(run_id):
        return await message("Not found", f"No run {run_id[:80]!r}.", 404)
    detail = await state.db(queries.get_run, run_id)
    if detail is None:
        if _is_starting(state, run_id):
            return await _page("starting", nav="runs", run_id=run_id, error=error)
        return await message("Not found", f"No run {run_id!r} in the tables.", 404)
    context = await to_thread.run_sync(_run_context, detail)
    return await _page("run", status, nav="runs", csrf=csrf_token(request), position=detail["position"],
                       report_style=Markup(REPORT_STYLE), error=error, **context)


async def cancel(request: Request) -> Response:
    form = await require_form_csrf(request)
    if form is None:
        return await forbidden()
    run_id = request.path_params["run_id"]
    try:
        await cancel_run(serve_state(request), run_id)
    except Problem as problem:
        return await _run_response(request, error=problem.message, status=problem.status)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


async def timeline(request: Request) -> Response:
    state = serve_state(request)
    run_id = request.path_params["run_id"]
    if not SAFE_ID.match(run_id):
        return HTMLResponse("<p class='note'>no such run</p>", status_code=404)
    fragment = await to_thread.run_sync(TIMELINES.fragment, state.db_path, state.log, state.artifacts,
                                           run_id)
    if fragment is None:
        return HTMLResponse("<p class='note'>no such run in the tables (yet)</p>", status_code=404)
    text = await to_thread.run_sync(lambda: PAGES["timeline"].render(
        position=fragment.position, final=fragment.final, note=fragment.note, timeline=Markup(fragment.html)))
    return HTMLResponse(text, headers={"Cache-Control": "no-store"})


# -- accounts ----------------------------------------------------------------------------------
async def accounts_page(request: Request) -> Response:
    state = serve_state(request)
    after = request.query_params.get("after") or None
    if after is not None and not SAFE_ID.match(after):
        return await message("Bad request", f"after={after[:40]!r} is not an account id", 400)
    data = await state.db(queries.accounts_page, limit=ACCOUNTS_PER_PAGE, after=after)
    return await _page("accounts", nav="accounts", accounts=data["accounts"], more=data["more"],
                       position=data["position"])


PAGE_ROUTES: list[BaseRoute] = [
    Route("/", tasks_page, methods=["GET"]),
    Route("/tasks/{task_id}/start", start_task, methods=["POST"]),
    Route("/runs", runs_page, methods=["GET"]),
    Route("/runs/{run_id}", run_page, methods=["GET"]),
    Route("/runs/{run_id}/timeline", timeline, methods=["GET"]),
    Route("/runs/{run_id}/cancel", cancel, methods=["POST"]),
    Route("/accounts", accounts_page, methods=["GET"]),
]
