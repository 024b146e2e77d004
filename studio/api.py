"""The REST API under `/api/v1`, plus `/healthz` and `/readyz`.

Errors always come back as `{"error": {"code", "message", "details"}}`: malformed JSON is 400,
an unknown id 404, saving over a newer version 409, and a flow document that cannot run 422
with every validation problem in `details`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AnyHttpUrl, BaseModel, Field

from engine import DocumentError, InvalidFlowError, validate
from storage import (
    CredentialInfo,
    DeliveryRecord,
    DuplicateName,
    FlowRecord,
    FlowVersionRecord,
    NotFound,
    RunRecord,
    StepRow,
    SubscriptionRecord,
    VersionConflict,
)
from storage.records import UNFINISHED
from studio.runtime import Runtime
from studio.subscriptions import EVENTS
from studio.webhooks import PREFIX as HOOKS_PREFIX

API_PREFIX = "/api/v1"
MAX_WAIT_S = 60.0

router = APIRouter(prefix=API_PREFIX)
health = APIRouter()


class ApiError(Exception):
    """An error answer: HTTP status, a stable code, a message for people, and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure in the one error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = next(e for e in errors if e.get("type") == "json_invalid")
            return JSONResponse(
                error_body(
                    "malformed_json",
                    "The request body is not valid JSON: "
                    f"{detail.get('ctx', {}).get('error', 'check quotes, commas and brackets')}.",
                ),
                400,
            )
        details = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]} for e in errors
        ]
        return JSONResponse(
            error_body("invalid_request", "The request does not have the expected shape.", details),
            422,
        )

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(error_body("not_found", str(exc)), 404)

    @app.exception_handler(VersionConflict)
    async def _conflict(_: Request, exc: VersionConflict) -> JSONResponse:
        details = {"base_version": exc.base_version, "current_version": exc.current_version}
        return JSONResponse(error_body("version_conflict", str(exc), details), 409)

    @app.exception_handler(DuplicateName)
    async def _duplicate(_: Request, exc: DuplicateName) -> JSONResponse:
        return JSONResponse(error_body("duplicate_name", str(exc)), 409)

    @app.exception_handler(InvalidFlowError)
    async def _invalid_flow(_: Request, exc: InvalidFlowError) -> JSONResponse:
        return JSONResponse(_invalid_body(exc.problems), 422)


def _invalid_body(problems: list[Any]) -> dict[str, Any]:
    errors = [p for p in problems if p.level == "error"]
    return error_body(
        "invalid_flow",
        f"The flow has {len(errors)} problem(s); each names the step and field to fix.",
        [p.to_dict() for p in problems],
    )


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# -- request bodies ---------------------------------------------------------------------------


class FlowSave(BaseModel):
    """A flow document to save; `base_version` is the version the edit started from."""

    document: dict[str, Any]
    base_version: int | None = Field(default=None, ge=1)
    message: str | None = Field(default=None, max_length=500)


class Retention(BaseModel):
    days: int | None = Field(default=None, ge=1)
    max_runs: int | None = Field(default=None, ge=1)


class CredentialSave(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    type: str = Field(default="generic", min_length=1, max_length=100)
    data: dict[str, str]


class SubscriptionSave(BaseModel):
    """An outgoing event webhook: where to POST which run events, signed with `secret`."""

    url: AnyHttpUrl
    events: list[str] = Field(min_length=1, description=f"any of {', '.join(EVENTS)}")
    headers: dict[str, str] = Field(default_factory=dict)
    secret: str | None = Field(default=None, min_length=1, max_length=1000)
    flow_id: str | None = Field(default=None, description="only runs of this flow")


# -- how records look in answers --------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def flow_json(flow: FlowRecord, *, with_document: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": flow.id,
        "name": flow.name,
        "version": flow.version,
        "active": flow.active,
        "created_at": _time(flow.created_at),
        "updated_at": _time(flow.updated_at),
        "retention": flow.retention,
    }
    if with_document:
        body["document"] = flow.document
    return body


def version_json(version: FlowVersionRecord) -> dict[str, Any]:
    return {
        "version": version.version,
        "message": version.message,
        "created_at": _time(version.created_at),
        "document": version.document,
    }


def step_json(step: StepRow) -> dict[str, Any]:
    duration = (
        (step.finished_at - step.started_at).total_seconds()
        if step.started_at and step.finished_at
        else None
    )
    return {
        "seq": step.seq,
        "node_id": step.node_id,
        "node_name": step.node_name,
        "node_type": step.node_type,
        "status": step.status,
        "visit": step.visit,
        "parent": step.parent,
        "item_index": step.item_index,
        "input": step.input,
        "output": step.output,
        "port": step.port,
        "error": step.error,
        "attempts": step.attempts,
        "started_at": _time(step.started_at),
        "finished_at": _time(step.finished_at),
        "duration_s": duration,
        "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens,
        "cost_usd": step.cost_usd,
        "model": step.model,
        "logs": step.logs,
    }


def run_json(run: RunRecord, *, with_steps: bool = True) -> dict[str, Any]:
    duration = (
        (run.finished_at - run.started_at).total_seconds()
        if run.started_at and run.finished_at
        else None
    )
    body: dict[str, Any] = {
        "id": run.id,
        "flow_id": run.flow_id,
        "flow_version": run.flow_version,
        "trigger": run.trigger,
        "status": run.status,
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "created_at": _time(run.created_at),
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "duration_s": duration,
    }
    if with_steps:
        body["steps"] = [step_json(step) for step in run.steps]
    return body


def credential_json(info: CredentialInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "type": info.type,
        "fields": info.fields,
        "created_at": _time(info.created_at),
        "updated_at": _time(info.updated_at),
    }


def _checked(document: dict[str, Any]) -> dict[str, Any]:
    """Refuse a document that cannot run, listing every problem (422)."""
    try:
        problems = validate(document)
    except DocumentError as exc:
        raise ApiError(422, "invalid_flow", str(exc)) from exc
    if any(p.level == "error" for p in problems):
        raise ApiError(
            422,
            "invalid_flow",
            _invalid_body(problems)["error"]["message"],
            [p.to_dict() for p in problems],
        )
    return document


# -- flows ------------------------------------------------------------------------------------


@router.get("/flows", tags=["flows"])
async def list_flows(
    request: Request, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)
) -> dict[str, Any]:
    """Every flow, most recently changed first (without documents)."""
    flows, total = await runtime_of(request).db.flows.list(limit=limit, offset=offset)
    return {"items": [flow_json(f, with_document=False) for f in flows], "total": total}


@router.post("/flows", status_code=201, tags=["flows"])
async def create_flow(request: Request, body: FlowSave) -> dict[str, Any]:
    """Save a new flow (version 1)."""
    flow = await runtime_of(request).db.flows.create(_checked(body.document), message=body.message)
    return flow_json(flow)


@router.get("/flows/{flow_id}", tags=["flows"])
async def get_flow(request: Request, flow_id: str) -> dict[str, Any]:
    return flow_json(await runtime_of(request).db.flows.get(flow_id))


@router.put("/flows/{flow_id}", tags=["flows"])
async def update_flow(request: Request, flow_id: str, body: FlowSave) -> dict[str, Any]:
    """Save a new version. With `base_version`, a save over a newer version is refused (409)."""
    flow = await runtime_of(request).db.flows.update(
        flow_id, _checked(body.document), base_version=body.base_version, message=body.message
    )
    return flow_json(flow)


@router.delete("/flows/{flow_id}", status_code=204, tags=["flows"])
async def delete_flow(request: Request, flow_id: str) -> Response:
    await runtime_of(request).db.flows.delete(flow_id)
    return Response(status_code=204)


@router.get("/flows/{flow_id}/versions", tags=["flows"])
async def list_versions(request: Request, flow_id: str) -> dict[str, Any]:
    """Every saved version, newest first."""
    versions = await runtime_of(request).db.flows.versions(flow_id)
    return {"items": [version_json(v) for v in versions], "total": len(versions)}


@router.post("/flows/{flow_id}/versions/{version}/restore", tags=["flows"])
async def restore_version(request: Request, flow_id: str, version: int) -> dict[str, Any]:
    """Make an earlier version current again (saved as a new version)."""
    flow = await runtime_of(request).db.flows.restore(
        flow_id, version, message=f"Restored version {version}"
    )
    return flow_json(flow)


@router.put("/flows/{flow_id}/retention", tags=["flows"])
async def set_retention(request: Request, flow_id: str, body: Retention) -> dict[str, Any]:
    """How long this flow's runs are kept (overrides the defaults)."""
    flow = await runtime_of(request).db.flows.set_retention(
        flow_id, days=body.days, max_runs=body.max_runs
    )
    return flow_json(flow, with_document=False)


@router.post("/flows/{flow_id}/activate", tags=["flows"])
async def activate_flow(request: Request, flow_id: str) -> dict[str, Any]:
    """Let the flow's webhook and schedule triggers listen (survives restarts); answers their
    URLs and next fire times."""
    runtime = runtime_of(request)
    flow = await runtime.db.flows.get(flow_id)
    runtime.compile(flow)  # refuse to activate a flow that cannot run
    flow = await runtime.db.flows.set_active(flow_id, True)
    await runtime.webhooks.refresh(flow)
    schedules = await runtime.schedules.refresh(flow)
    return {
        "active": flow.active,
        "webhooks": await _webhook_urls(request, flow),
        "schedules": [_schedule_json(s) for s in schedules],
    }


@router.post("/flows/{flow_id}/deactivate", tags=["flows"])
async def deactivate_flow(request: Request, flow_id: str) -> dict[str, Any]:
    """Stop the flow's webhook and schedule triggers at once."""
    runtime = runtime_of(request)
    flow = await runtime.db.flows.set_active(flow_id, False)
    await runtime.webhooks.refresh(flow)
    await runtime.schedules.refresh(flow)
    return {"active": flow.active, "webhooks": [], "schedules": []}


@router.get("/flows/{flow_id}/webhooks", tags=["flows"])
async def list_webhooks(request: Request, flow_id: str) -> dict[str, Any]:
    """The URL of each webhook (and Telegram) trigger, and whether it listens now."""
    flow = await runtime_of(request).db.flows.get(flow_id)
    items = [{**hook, "active": flow.active} for hook in await _webhook_urls(request, flow)]
    return {"items": items, "total": len(items)}


@router.get("/flows/{flow_id}/schedules", tags=["flows"])
async def list_schedules(request: Request, flow_id: str) -> dict[str, Any]:
    """When each schedule trigger of an active flow fires next (none when inactive)."""
    runtime = runtime_of(request)
    await runtime.db.flows.get(flow_id)  # NotFound
    items = [_schedule_json(s) for s in runtime.schedules.next_runs(flow_id)]
    return {"items": items, "total": len(items)}


async def _webhook_urls(request: Request, flow: FlowRecord) -> list[dict[str, Any]]:
    base = str(request.base_url).rstrip("/")
    tokens = await runtime_of(request).webhooks.tokens(flow)
    return [
        {"node_id": node_id, "url": f"{base}{HOOKS_PREFIX}{token}"}
        for node_id, token in tokens.items()
    ]


def _schedule_json(schedule: dict[str, Any]) -> dict[str, Any]:
    return {"node_id": schedule["node_id"], "next_run_at": _time(schedule["next_run_at"])}


# -- runs -------------------------------------------------------------------------------------


@router.post("/flows/{flow_id}/runs", status_code=202, tags=["runs"])
async def start_run(
    request: Request,
    flow_id: str,
    wait: float = Query(0, ge=0, le=MAX_WAIT_S, description="seconds to wait for the end"),
    trigger: str | None = Query(None, description="the trigger step to start from"),
) -> Any:
    """Start a run with the request body as its input. The run is stored before the answer."""
    raw = await request.body()
    try:
        input_value = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}.",
        ) from exc
    runtime = runtime_of(request)
    flow = await runtime.db.flows.get(flow_id)
    compiled = runtime.compile(flow)
    if trigger is not None and trigger not in compiled.triggers:
        raise ApiError(
            422,
            "unknown_trigger",
            f"'{trigger}' is not a trigger of this flow.",
            {"triggers": compiled.triggers},
        )
    record = await runtime.submit(flow, input_value, trigger=trigger)
    if wait:
        await runtime.wait(record.id, wait)
        finished = await runtime.db.runs.get(record.id)
        if finished.status not in ("queued", "running"):
            return JSONResponse({"run_id": record.id, **run_json(finished)}, 200)
    return {"run_id": record.id, "status": record.status}


@router.get("/runs", tags=["runs"])
async def list_runs(
    request: Request,
    flow_id: str | None = None,
    status: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    runs, total = await runtime_of(request).db.runs.list(
        flow_id=flow_id, status=status, limit=limit, offset=offset
    )
    return {"items": [run_json(r, with_steps=False) for r in runs], "total": total}


@router.get("/runs/{run_id}", tags=["runs"])
async def get_run(request: Request, run_id: str) -> dict[str, Any]:
    """A run with every step record."""
    return run_json(await runtime_of(request).db.runs.get(run_id))


@router.post("/runs/{run_id}/cancel", tags=["runs"])
async def cancel_run(request: Request, run_id: str, response: Response) -> dict[str, Any]:
    """Stop a queued or running run, also one another FlowLoom process on the same database
    runs: 200 with its status once it stopped; 202 while the process running it has not yet
    (it was asked to); 409 when it is not running."""
    runtime = runtime_of(request)
    run = await runtime.db.runs.get(run_id)
    if not await runtime.cancel(run_id):
        raise ApiError(409, "not_running", f"Run {run_id} is not running (it is {run.status}).")
    run = await runtime.db.runs.get(run_id)
    if run.status in UNFINISHED:
        response.status_code = 202
        return {
            "run_id": run_id,
            "status": run.status,
            "message": "The FlowLoom process running this run was asked to stop it.",
        }
    return {"run_id": run_id, "status": run.status}


# -- credentials ------------------------------------------------------------------------------


@router.get("/credentials", tags=["credentials"])
async def list_credentials(request: Request) -> dict[str, Any]:
    """Every credential's name, type and field names; never the secret values."""
    items = await runtime_of(request).db.credentials.list()
    return {"items": [credential_json(c) for c in items], "total": len(items)}


@router.post("/credentials", status_code=201, tags=["credentials"])
async def save_credential(request: Request, body: CredentialSave) -> dict[str, Any]:
    """Store (or replace) a credential, encrypted; the answer holds no secret values."""
    runtime = runtime_of(request)
    info = await runtime.db.credentials.put(body.name, body.type, body.data)
    runtime.webhooks.forget_credentials()
    return credential_json(info)


@router.delete("/credentials/{name}", status_code=204, tags=["credentials"])
async def delete_credential(request: Request, name: str) -> Response:
    runtime = runtime_of(request)
    await runtime.db.credentials.delete(name)
    runtime.webhooks.forget_credentials()
    return Response(status_code=204)


# -- outgoing event webhooks -----------------------------------------------------------------


def subscription_json(subscription: SubscriptionRecord) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "events": subscription.events,
        "headers": subscription.headers,
        "flow_id": subscription.flow_id,
        "signed": subscription.secret is not None,
        "created_at": _time(subscription.created_at),
    }


def delivery_json(delivery: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "delivery_id": delivery.delivery_id,
        "event": delivery.event,
        "run_id": delivery.run_id,
        "attempt": delivery.attempt,
        "status_code": delivery.status_code,
        "error": delivery.error,
        "response": delivery.response,
        "duration_ms": delivery.duration_ms,
        "created_at": _time(delivery.created_at),
    }


@router.get("/subscriptions", tags=["subscriptions"])
async def list_subscriptions(request: Request) -> dict[str, Any]:
    """Every outgoing event webhook (never its secret)."""
    items = await runtime_of(request).db.subscriptions.list()
    return {"items": [subscription_json(s) for s in items], "total": len(items)}


@router.post("/subscriptions", status_code=201, tags=["subscriptions"])
async def create_subscription(request: Request, body: SubscriptionSave) -> dict[str, Any]:
    """POST run events to `url` from now on; with `secret`, each body is signed
    (`X-FlowLoom-Signature: sha256=<hex HMAC-SHA256 of the raw body>`)."""
    unknown = [event for event in body.events if event not in EVENTS]
    if unknown:
        raise ApiError(
            422,
            "unknown_event",
            f"Unknown event(s) {', '.join(unknown)}; choose among {', '.join(EVENTS)}.",
        )
    runtime = runtime_of(request)
    subscription = await runtime.db.subscriptions.create(
        url=str(body.url),
        events=body.events,
        headers=body.headers,
        secret=body.secret,
        flow_id=body.flow_id,
    )
    await runtime.subscriptions.reload()
    return subscription_json(subscription)


@router.delete("/subscriptions/{subscription_id}", status_code=204, tags=["subscriptions"])
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    runtime = runtime_of(request)
    await runtime.db.subscriptions.delete(subscription_id)
    await runtime.subscriptions.reload()
    return Response(status_code=204)


@router.get("/subscriptions/{subscription_id}/deliveries", tags=["subscriptions"])
async def list_deliveries(
    request: Request, subscription_id: str, limit: int = Query(100, ge=1, le=1000)
) -> dict[str, Any]:
    """The subscription's latest delivery attempts, newest first, with what each got."""
    items = await runtime_of(request).db.subscriptions.deliveries(subscription_id, limit=limit)
    return {"items": [delivery_json(d) for d in items], "total": len(items)}


# -- health -----------------------------------------------------------------------------------


@health.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@health.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """Ready to work: the database answers, its schema is current, the scheduler runs."""
    runtime = runtime_of(request)
    checks: dict[str, str] = {}
    try:
        await runtime.db.ping()
        checks["database"] = "ok"
        current = await runtime.db.schema_is_current()
        checks["migrations"] = "ok" if current else "not applied: run `flowloom db upgrade`"
    except Exception as exc:
        checks["database"] = f"unreachable: {exc}"
    checks.update(runtime.readiness())
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )
