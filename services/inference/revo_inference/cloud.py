"""A request on a cloud provider: hold the budget, stream the answer, settle the cost.

Candidates are tried in order. Each try holds money with `ledger.reserve` first (no hold,
no call); a provider that fails before its first token is cooled down and the next
candidate is tried; whatever happens, the hold is settled with the tokens actually used
(0 releases it). A stream cut after its first token ends the caller's stream with an
`upstream_error`: part of the answer is already out, so it must not look complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from revo_contracts import subjects
from revo_contracts.inference import ChatChunk, ChatRequest
from revo_contracts.ledger import Reservation, ReserveRequest, Settlement, SettleRequest
from revo_core.bus import Bus
from revo_core.errors import BudgetExceeded, BusUnavailable, ServiceError, UpstreamError
from revo_core.logging import get_logger
from revo_inference import metrics
from revo_inference.providers import ProviderFailed, StreamCut
from revo_inference.router import CloudCandidate, Route
from revo_inference.tally import Tally

log = get_logger("revo.inference.cloud")
_tracer = trace.get_tracer("revo.inference.cloud")


class CloudCaller:
    def __init__(self, bus: Bus, ledger_timeout_s: float) -> None:
        self._bus = bus
        self._timeout = ledger_timeout_s
        self._settling: set[asyncio.Task[None]] = set()

    async def chat(
        self, request: ChatRequest, route: Route, tally: Tally
    ) -> AsyncIterator[ChatChunk]:
        refusals: list[BudgetExceeded] = []
        failures: list[str] = []
        for attempt, candidate in enumerate(route.cloud):
            if candidate.provider.cooling_down():
                failures.append(f"{candidate.provider.name}: cooling down after a failure")
                continue
            try:
                reservation = await self._reserve(request, candidate, tally.prompt_tokens, attempt)
            except BudgetExceeded as exc:
                refusals.append(exc)
                continue
            except (ServiceError, BusUnavailable) as exc:
                failures.append(f"ledger refused {candidate.model.name}: {exc}")
                continue
            tally.switch_to_cloud(candidate.model.name, candidate.provider.name)
            try:
                async with aclosing(self._stream(request, candidate, tally)) as chunks:
                    async for chunk in chunks:
                        yield chunk
                return
            except ProviderFailed as exc:
                candidate.provider.cool_down()
                metrics.PROVIDER_FAILURES.labels(candidate.provider.name, "failed").inc()
                log.warning("provider failed, trying the next", error=str(exc))
                failures.append(str(exc))
            finally:
                self._settle(reservation, request, tally)
        raise _no_provider(route, refusals, failures)

    async def _stream(
        self, request: ChatRequest, candidate: CloudCandidate, tally: Tally
    ) -> AsyncIterator[ChatChunk]:
        deltas = candidate.provider.stream(candidate.model, request)
        span = _provider_span(candidate)
        try:
            async with aclosing(deltas) as stream:
                async for delta in stream:
                    chunk = tally.cloud_chunk(request, delta)
                    if chunk is not None:
                        yield chunk
        except StreamCut as exc:
            candidate.provider.cool_down()
            metrics.PROVIDER_FAILURES.labels(candidate.provider.name, "cut").inc()
            tally.finish_reason = "error"
            span.set_status(StatusCode.ERROR, str(exc))
            raise UpstreamError(
                f"{exc}; the answer is incomplete",
                {"provider": candidate.provider.name, "chunks_sent": tally.index},
            ) from None
        except ProviderFailed as exc:
            span.set_status(StatusCode.ERROR, str(exc))
            raise
        finally:
            span.set_attribute("gen_ai.usage.output_tokens", tally.completion_tokens)
            span.end()
        yield tally.cloud_last(request)

    async def _reserve(
        self, request: ChatRequest, candidate: CloudCandidate, prompt_tokens: int, attempt: int
    ) -> Reservation:
        hold = ReserveRequest(
            tenant=request.tenant,
            model=candidate.model.name,
            prompt_tokens=prompt_tokens,
            max_completion_tokens=request.max_tokens,
            request_id=request.request_id,
            reservation_id=f"{request.request_id}.{attempt}",
        )
        return await self._bus.request(subjects.LEDGER_RESERVE, hold, Reservation, self._timeout)

    def _settle(self, reservation: Reservation, request: ChatRequest, tally: Tally) -> None:
        """In the background: the caller's last chunk never waits for the ledger."""
        ran = tally.prompt_tokens if tally.sent_anything else 0
        settle = SettleRequest(
            reservation_id=reservation.reservation_id,
            tenant=request.tenant,
            model=tally.model,
            provider=tally.provider,
            prompt_tokens=ran,
            completion_tokens=tally.completion_tokens if ran else 0,
        )
        if not ran:
            settle.cost_micros = 0
        task = asyncio.create_task(self._send_settle(settle))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _send_settle(self, settle: SettleRequest) -> None:
        try:
            await self._bus.request(subjects.LEDGER_SETTLE, settle, Settlement, self._timeout)
        except Exception as exc:
            # The hold expires on its own; the usage event records the actual cost anyway.
            log.warning("settle failed", reservation=settle.reservation_id, error=str(exc))

    async def flush(self, timeout: float = 10.0) -> None:
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=timeout)


def _provider_span(candidate: CloudCandidate) -> Span:
    """A client span per provider call, a child of the request's `inference.chat` span."""
    return _tracer.start_span(
        f"chat {candidate.model.name}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": candidate.provider.name,
            "gen_ai.request.model": candidate.model.upstream_name,
            "server.address": candidate.provider.spec.base_url,
        },
    )


def _no_provider(route: Route, refusals: list[BudgetExceeded], failures: list[str]) -> Exception:
    details = {"route_reason": route.reason, "failures": failures}
    if refusals and not failures:
        first = refusals[0]
        return BudgetExceeded(
            f"{route.detail}, and the cloud budget does not allow it: {first.message}",
            {**details, **first.details},
        )
    tried = "; ".join(failures + [r.message for r in refusals])
    return UpstreamError(f"{route.detail}, and no cloud provider could serve it: {tried}", details)
