"""From a delivered usage event to the row the ledger records, or the reason it cannot.

A row is a plain tuple in the column order of `ledger.usage` (COLUMNS), priced with the
table in force: its cost, and its cloud-equivalent cost on the table's reference model.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from revo_contracts import subjects
from revo_contracts.usage import UsageEvent
from revo_core.codec import UNREADABLE
from revo_cost_ledger.prices import PriceTable

COLUMNS = (
    "event_id",
    "tenant",
    "api_key_id",
    "request_id",
    "run_id",
    "model",
    "provider",
    "kind",
    "prompt_tokens",
    "completion_tokens",
    "cost_pico",
    "cloud_pico",
    "priced",
    "route_reason",
    "created_at",
    "day",
)
EVENT_ID, TENANT, PROVIDER, MODEL = 0, 1, 6, 5
PROMPT, COMPLETION, COST, CLOUD, PRICED = 8, 9, 10, 11, 12
# An event stamped further than this in the future is refused: its day would be wrong.
MAX_CLOCK_SKEW_S = 86_400.0
MAX_ID_LENGTH = 200
_decoder = msgspec.json.Decoder(UsageEvent)
_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str


class RowBuilder:
    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self._days: dict[int, datetime.date] = {}
        # tenant -> its usage subject, for the tenants seen valid (checked once each).
        self._subjects: dict[str, str] = {}

    def build(
        self, subject: str, data: bytes, table: PriceTable, now: float | None = None
    ) -> tuple[Any, ...] | Rejection:
        """The row of one delivery; `now` (the batch's receive time) stamps events that
        carry no created_at."""
        now = time.time() if now is None else now
        try:
            event = _decoder.decode(data)
        except msgspec.ValidationError as exc:
            return Rejection("invalid", str(exc))
        except UNREADABLE as exc:
            return Rejection("malformed", str(exc) or "nested too deep")
        rejection = self._check(subject, event, now)
        if rejection is not None:
            return rejection
        return self._row(event, table, now)

    def _check(self, subject: str, event: UsageEvent, now: float) -> Rejection | None:
        expected = self._subjects.get(event.tenant)
        if expected is None:
            try:
                expected = subjects.usage(event.tenant)
            except subjects.InvalidSubjectToken as exc:
                return Rejection("invalid_tenant", str(exc))
            if len(self._subjects) > 100_000:
                self._subjects.clear()
            self._subjects[event.tenant] = expected
        if subject != expected:
            return Rejection("tenant_mismatch", f"tenant {event.tenant!r} sent on {subject}")
        if not 0 < len(event.event_id) <= MAX_ID_LENGTH:
            return Rejection("invalid_id", f"event_id must be 1-{MAX_ID_LENGTH} characters")
        if not 0 < len(event.request_id) <= MAX_ID_LENGTH:
            return Rejection("invalid_id", f"request_id must be 1-{MAX_ID_LENGTH} characters")
        prompt, completion = event.prompt_tokens, event.completion_tokens
        if prompt < 0 or completion < 0:
            return Rejection("negative_tokens", f"token counts {prompt}, {completion} below 0")
        if prompt > self.max_tokens or completion > self.max_tokens:
            return Rejection(
                "absurd_tokens", f"token counts {prompt}, {completion} above {self.max_tokens}"
            )
        if event.created_at > now + MAX_CLOCK_SKEW_S:
            return Rejection("future_event", f"created_at {event.created_at} is in the future")
        return None

    def _row(self, event: UsageEvent, table: PriceTable, now: float) -> tuple[Any, ...]:
        price = table.price(event.provider, event.model)
        prompt, completion = event.prompt_tokens, event.completion_tokens
        created_at = event.created_at if event.created_at > 0 else now
        return (
            event.event_id,
            event.tenant,
            event.api_key_id,
            event.request_id,
            event.run_id,
            event.model,
            event.provider,
            event.kind,
            prompt,
            completion,
            price.cost(prompt, completion) if price is not None else 0,
            table.reference_price(event.kind).cost(prompt, completion),
            price is not None,
            event.route_reason,
            created_at,
            self._day(created_at),
        )

    def _day(self, ts: float) -> datetime.date:
        """The UTC day of a timestamp; the date objects are shared (a batch has few days)."""
        number = int(ts // _SECONDS_PER_DAY)
        day = self._days.get(number)
        if day is None:
            day = datetime.datetime.fromtimestamp(number * _SECONDS_PER_DAY, datetime.UTC).date()
            if len(self._days) > 1000:
                self._days.clear()
            self._days[number] = day
        return day
