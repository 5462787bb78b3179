"""Notification channels: each one a client of its destination's real API.

A channel turns a `Notification` into the destination's calls. It raises `DeliveryFailed`
(retryable or permanent, with the destination's Retry-After) and records what it made
through `DeliveryContext.keep` as soon as the destination answers, so that a retry after a
failure half-way, or after a crash, updates instead of posting again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from revo_contracts.integrations import Integration
from revo_contracts.notify import Notification
from revo_integrations.notify_store import DeliveryRecord, NotifyStore


class DeliveryFailed(Exception):
    """A delivery attempt that did not go through."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
        reason: str = "",
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent
        # For the retries metric: rate_limited, server_error, network, timeout, refused.
        self.reason = reason or _reason(status, permanent)


def _reason(status: int | None, permanent: bool) -> str:
    if permanent:
        return "refused"
    if status == 429:
        return "rate_limited"
    if status is not None and status >= 500:
        return "server_error"
    return "network"


def failed_status(status: int, detail: str, retry_after: float | None = None) -> DeliveryFailed:
    """The failure an HTTP status means: 408, 409, 425, 429 and 5xx are worth a retry;
    any other 4xx (bad credentials, no such repository) fails the same way every time."""
    retryable = status in (408, 409, 425, 429) or status >= 500
    return DeliveryFailed(
        f"HTTP {status}: {detail}"[:2048],
        status=status,
        retry_after=retry_after,
        permanent=not retryable,
    )


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is treated as 'soon': 1 s)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return 1.0


Keep = Callable[..., Awaitable[None]]


@dataclass
class DeliveryContext:
    """What a channel needs for one delivery attempt."""

    session: aiohttp.ClientSession
    store: NotifyStore | None
    record: DeliveryRecord
    # Saves what the destination made (merged into the record's `posted`).
    keep: Keep
    answers: list[tuple[int, str]] = field(default_factory=list)

    @property
    def posted(self) -> dict[str, Any]:
        return self.record.posted

    @property
    def maybe_posted_before(self) -> bool:
        """An earlier attempt began and may have reached the destination unheard."""
        return self.record.earlier_attempts > 0

    def answered(self, status: int, detail: str) -> None:
        """The destination's last answer (what `revo integrations test` prints)."""
        self.answers.append((status, detail[:500]))


async def _nothing_kept(**_: Any) -> None:
    return None


def test_context(session: aiohttp.ClientSession) -> DeliveryContext:
    """A context for a test notification: nothing recorded, nothing looked up."""
    return DeliveryContext(
        session=session,
        store=None,
        record=DeliveryRecord(state="pending", earlier_attempts=0, failures=0),
        keep=_nothing_kept,
    )


class NotifyChannel(Protocol):
    name: str

    def rate_key(self, note: Notification, integration: Integration) -> str:
        """The destination whose rate cap this delivery counts against."""
        ...

    async def deliver(
        self, ctx: DeliveryContext, note: Notification, integration: Integration
    ) -> None: ...

    async def test(self, ctx: DeliveryContext, integration: Integration) -> None:
        """Send a real test notification (or, where one would create work for people, a
        real authenticated call that proves the integration works)."""
        ...
