"""The JSON API (docs/api.md). Every read goes through ``ServeState.db`` (a thread), and its answer is
encoded to JSON in that thread too (a 30,000-account run would hold the loop for a fifth of a second);
every start and cancel goes through ``warmup.serve.control``; every POST through ``read_json_body``
(the size cap, the CSRF rule of ``security.api_write_refusal``); a bad parameter is a 400 with one
line ``{"error": ...}``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from warmup.errors import UsageError
from warmup.runs.origin import API, RunOrigin
from warmup.serve import queries
from warmup.serve.control import Problem, cancel_run, start_run
from warmup.serve.security import api_write_refusal
from warmup.serve.state import serve_state
from warmup.status import STATUS_STYLE
from warmup.tasks import SAFE_ID
from warmup.times import parse_log_ts

MAX_BODY = 1 << 20
MAX_LIMIT = 1000
MAX_ACCOUNTS = 10_000  # accounts per answer of /api/accounts (page on with ?after=)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _encoded(db: Any, query: Any, *args: Any, **kwargs: Any) -> bytes | None:
    """``query``'s answer as JSON bytes (None stays None): run in the thread with the query."""
    answer = query(db, *args, **kwargs)
    return None if answer is None else orjson.dumps(answer)


def json_bytes(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


async def read_json_body(request: Request) -> Any:
    """A POST's JSON body ({} when empty), read at most ``MAX_BODY`` bytes; ``Problem`` 403/413/415/400."""
    refusal = api_write_refusal(request)
    if refusal is not None:
        raise Problem(*refusal)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise Problem(413, f"the body is over {MAX_BODY} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Problem(413, f"the body is over {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Problem(415, "send the body as JSON (Content-Type: application/json)")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"the body is not JSON: {exc}") from None


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, f"{name}={raw[:40]!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise Problem(400, f"{name} must be from {lo} to {hi}, not {value}")
    return value


async def list_tasks(request: Request) -> Response:
    state = serve_state(request)
    entries = await state.tasks()
    last = await state.db(queries.last_runs, [e.id for e in entries])
    out = []
    for entry in entries:
        item = entry.summary()
        fire = state.next_fire(entry.id)
        item.update(last_run=last.get(entry.id), running=state.launcher.running(entry.id),
                    next_run_at=fire.isoformat().replace("+00:00", "Z") if fire else None)
        out.append(item)
    return JSONResponse({"tasks": out})


async def get_task(request: Request) -> Response:
    state = serve_state(request)
    task_id = request.path_params["task_id"]
    entry = next((e for e in await state.tasks() if e.id == task_id), None)
    if entry is None:
        return error(404, f"no task {task_id[:80]!r} in {state.config.tasks_dir}")
    item = entry.summary()
    item["definition"] = entry.task.record() if entry.task is not None else None  # ${env.*} unresolved
    return JSONResponse(item)


async def create_run(request: Request) -> Response:
    state = serve_state(request)
    body = await read_json_body(request)
    if not isinstance(body, dict):
        return error(400, 'the body must be a JSON object, like {"accounts": ["alice"]}')
    accounts = body.get("accounts") or []
    retry_failed = body.get("retry_failed", False)
    if not isinstance(accounts, list) or not isinstance(retry_failed, bool):
        return error(400, 'accounts must be a list of ids, retry_failed true or false')
    unknown = sorted(set(body) - {"accounts", "retry_failed"})
    if unknown:
        return error(400, f"unknown field {unknown[0]!r} (known: accounts, retry_failed)")
    launch = await start_run(state, request.path_params["task_id"], RunOrigin(API), accounts=tuple(accounts),
                             retry_failed=retry_failed)
    return JSONResponse({"run_id": launch.run_id, "task_id": launch.task_id, "url": f"/runs/{launch.run_id}",
                         "api": f"/api/runs/{launch.run_id}"}, status_code=201)


async def list_runs(request: Request) -> Response:
    state = serve_state(request)
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status.upper() not in STATUS_STYLE:
        return error(400, f"status={status[:40]!r}: one of {', '.join(STATUS_STYLE)}")
    task = params.get("task") or None
    if task is not None and not SAFE_ID.match(task):
        return error(400, f"task={task[:40]!r} is not a task id")
    since = params.get("since") or None
    try:
        since_ts = parse_log_ts(since, "since") if since is not None else None
    except UsageError as exc:
        return error(400, str(exc))
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
    before = params.get("before") or None
    page = await state.db(_encoded, queries.list_runs, status=status.upper() if status else None, task=task,
                          since=since_ts, limit=limit, before=before)
    return json_bytes(page or b"{}")


async def get_run(request: Request) -> Response:
    state = serve_state(request)
    run_id = request.path_params["run_id"]
    if not SAFE_ID.match(run_id):
        return error(404, f"no run {run_id[:80]!r}")
    detail = await state.db(_encoded, queries.get_run, run_id)
    if detail is None:
        return error(404, f"no run {run_id!r} in the tables (yet: a run just started shows within a second)")
    return json_bytes(detail)


async def cancel(request: Request) -> Response:
    state = serve_state(request)
    run_id = request.path_params["run_id"]
    await read_json_body(request)
    await cancel_run(state, run_id)
    return JSONResponse({"run_id": run_id, "cancelled": True}, status_code=202)


async def list_accounts(request: Request) -> Response:
    state = serve_state(request)
    limit = _int_param(request, "limit", 1000, 1, MAX_ACCOUNTS)
    after = request.query_params.get("after") or None
    if after is not None and not SAFE_ID.match(after):
        return error(400, f"after={after[:40]!r} is not an account id")
    body = await state.db(_encoded, _accounts_answer, limit=limit, after=after)
    return json_bytes(body or b"{}")


def _accounts_answer(db: Any, *, limit: int, after: str | None) -> dict[str, Any]:
    accounts = queries.list_accounts(db, limit=limit, after=after)
    return {"accounts": accounts, "next": accounts[-1]["id"] if len(accounts) == limit else None}


API_ROUTES = [
    Route("/api/tasks", list_tasks, methods=["GET"]),
    Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/api/tasks/{task_id}/runs", create_run, methods=["POST"]),
    Route("/api/runs", list_runs, methods=["GET"]),
    Route("/api/runs/{run_id}", get_run, methods=["GET"]),
    Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
    Route("/api/accounts", list_accounts, methods=["GET"]),
]


async def problem_response(request: Request, exc: Exception) -> Response:
    """``Problem`` raised by a handler: JSON under /api/, plain text elsewhere (pages catch their own).
    A ``WarmupError`` from reading the tables (a locked or damaged database) is a 503 with its line."""
    if isinstance(exc, Problem):
        status, message = exc.status, exc.message
    else:
        status, message = 503, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if request.url.path.startswith("/api/"):
        return error(status, message)
    return PlainTextResponse(message + "\n", status_code=status)
