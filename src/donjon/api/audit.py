"""``/v1/audit/*`` (donjon extension): a project's own audit records, and whether the chain verifies.

``GET /v1/audit/records?limit=N``  the last N (default 50, at most 500) outcome records of requests made
                                   by callers of the caller's project, newest first: ``{"records":
                                   [{"seq", "event"}]}``, each ``event`` the CADF event as it is on record
``GET /v1/audit/verify``           the whole local chain checked as ``donjon audit verify`` does:
                                   ``{"ok", "records", "line", "problem", "note"}``

Both are under the rule ``audit:get`` (default: the project's admins). They read the log of the node that
answers: each host keeps its own chain. With auditing off both are 404.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import AppContext, authenticate, ctx, json_response, operation
from donjon.api.schemas import shapes
from donjon.audit.reader import AuditLog
from donjon.auth import Caller
from donjon.errors import InvalidInput, NotFound

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _authorised_log(context: AppContext, caller: Caller, operation: str) -> AuditLog:
    context.policy.enforce("audit:get", caller, operation=operation)
    if context.audit_log is None:
        raise NotFound("Auditing is not enabled on this server.")
    return context.audit_log


@operation("Audit records retrieval")
async def list_records(request: Request) -> Response:
    caller = await authenticate(request)
    log = _authorised_log(ctx(request), caller, "Audit records retrieval")
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput(f"'limit' must be an integer from 1 to {MAX_LIMIT}.")
    records = await run_in_threadpool(log.last_records, caller.project_id, int(raw))
    return json_response({"records": records})


@operation("Audit chain verification")
async def verify_chain(request: Request) -> Response:
    caller = await authenticate(request)
    log = _authorised_log(ctx(request), caller, "Audit chain verification")
    verdict = await run_in_threadpool(log.verify)
    return json_response(
        {
            "ok": verdict.ok,
            "records": verdict.count,
            "line": verdict.line,
            "problem": verdict.problem or None,
            "note": verdict.note or None,
        },
        headers={"Cache-Control": "no-store"},
    )


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
RESPONSES: shapes.Schema = {
    "AuditRecords": {
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["seq", "event"],
                    "properties": {
                        "seq": {"type": "integer", "description": "the record's place in the local chain"},
                        "event": {"type": "object", "description": "the CADF event as recorded"},
                    },
                },
            }
        },
    },
    "AuditVerdict": {
        "type": "object",
        "required": ["ok", "records", "line", "problem", "note"],
        "additionalProperties": False,
        "properties": {
            "ok": {"type": "boolean"},
            "records": {"type": "integer", "description": "records checked good (before the first problem)"},
            "line": {"type": ["integer", "null"], "description": "1-based line of the first problem"},
            "problem": shapes.string(nullable=True),
            "note": shapes.string(nullable=True),
        },
    },
}
