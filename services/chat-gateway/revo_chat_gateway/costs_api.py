"""`GET /v1/costs`: the cost ledger's report for the caller's tenant.

Spend by day, model and provider, the local share of tokens, savings versus the reference
cloud model and the top runs by cost, as `revo cost` prints them. The tenant comes from the
credentials only: a `tenant` in the query is ignored, so no caller reads another's spend.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

from revo_chat_gateway.auth import principal_of
from revo_chat_gateway.http_errors import HttpError
from revo_contracts import subjects
from revo_contracts.ledger import CostReport, ReportRequest
from revo_core.service import BUS
from revo_core.when import parse_when

REPORT_TIMEOUT_S = 10.0


async def tenant_costs(request: web.Request) -> web.Response:
    report_request = _report_request(request)
    report = await request.app[BUS].request(
        subjects.LEDGER_REPORT, report_request, CostReport, timeout=REPORT_TIMEOUT_S
    )
    return web.json_response(msgspec.to_builtins(report))


def _report_request(request: web.Request) -> ReportRequest:
    query = request.query
    try:
        fields = {
            "tenant": principal_of(request).tenant,
            "since": _when(query, "since"),
            "until": _when(query, "until"),
        }
        if "top" in query:
            fields["top_runs"] = query["top"]
        # strict=False: query values are strings ("5" for the top 5 runs).
        return msgspec.convert(fields, ReportRequest, strict=False)
    except (ValueError, msgspec.ValidationError) as exc:
        raise HttpError(400, f"invalid query: {exc}", "invalid_request") from None


def _when(query: Mapping[str, str], name: str) -> float | None:
    # Empty (`?since=`) is unset, as a form sends a field left blank.
    try:
        return parse_when(query.get(name) or None)
    except ValueError as exc:
        raise HttpError(400, f"invalid query: {name}: {exc}", "invalid_request") from None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/costs", tenant_costs)
