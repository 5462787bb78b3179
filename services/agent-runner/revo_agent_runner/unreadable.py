"""Submissions the runner cannot decode, and who they were for.

A run that breaks its contract (a `user` past its bound, a field of the wrong type) cannot
be executed, but its submitter is waiting on `runs.events.<tenant>.<run>`: where the run can
still be identified (its tenant from the subject, its id from the body or the stream's
Nats-Msg-Id, which submit_run sets to the run id), it ends as a failed run, so the waiting
client hears why at once. Only what is not even that is dropped unheard.
"""

from __future__ import annotations

from typing import Any

import msgspec
from nats.aio.msg import Msg

from revo_contracts.inference import TenantId
from revo_contracts.runs import AgentName, RunId, RunSubmit
from revo_core.codec import UNREADABLE

UNKNOWN_AGENT = "unknown"
_MSG_ID_HEADER = "Nats-Msg-Id"


class _Partial(msgspec.Struct):
    """What can be read of a run that is not a valid RunSubmit; any field may be missing."""

    run_id: Any = None
    tenant: Any = None
    agent: Any = None
    submitted_at: Any = None


def identify(msg: Msg) -> RunSubmit | None:
    """A stand-in RunSubmit (id, tenant, agent where readable) for a delivery that failed to
    decode, or None when it names no run of the subject's tenant."""
    tenant = _valid(msg.subject.rsplit(".", 1)[-1], TenantId)
    partial = _partial(msg.data)
    if tenant is None or partial.tenant not in (None, tenant):
        return None  # a run claiming another tenant than its subject's: not ours to record
    headers = msg.headers or {}
    run_id = _valid(partial.run_id, RunId) or _valid(headers.get(_MSG_ID_HEADER), RunId)
    if run_id is None:
        return None
    submitted_at = partial.submitted_at
    return RunSubmit(
        run_id=run_id,
        tenant=tenant,
        agent=_valid(partial.agent, AgentName) or UNKNOWN_AGENT,
        submitted_at=float(submitted_at) if isinstance(submitted_at, int | float) else 0.0,
    )


def _partial(data: bytes) -> _Partial:
    try:
        return msgspec.json.decode(data, type=_Partial)
    except UNREADABLE:  # not JSON, not an object, or nested too deep
        return _Partial()


def _valid(value: Any, kind: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return None
