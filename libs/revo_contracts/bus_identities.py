"""Who may speak on the bus (DESIGN.md §2): each identity's publish and subscribe allow-lists.

Every NATS connection authenticates as one identity (a user JWT signed by revo's account;
revo_core.bus_authority issues them), and nats-server enforces these lists: a service can
publish and subscribe only to its own subjects, the JetStream API subjects of its own
streams and consumers, and its own reply inbox (`_INBOX.<identity>.>`), so no identity can
read another's replies. Replies to a request it received go through `allow_responses`
(the server lets a client publish to the reply subject of a message it was sent).

A subject added to subjects.py is added here too, to the identities that use it; the test
libs/tests/test_bus_auth.py checks that every service's real traffic stays inside its list
and that the attacks of issue 14 are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from revo_contracts import subjects
from revo_contracts.ci import CI_LOGS_BUCKET
from revo_contracts.notify import CHANNELS
from revo_contracts.streams import (
    AUDIT,
    CI_EVENTS,
    NOTIFY,
    NOTIFY_DEAD,
    RUN_EVENTS,
    RUNS,
    USAGE,
    USAGE_DEAD,
)

INFERENCE = "inference"
AGENT_RUNNER = "agent-runner"
MEMORY = "memory"
COST_LEDGER = "cost-ledger"
CHAT_GATEWAY = "chat-gateway"
INTEGRATIONS = "integrations"
# The operator's identity (the `revo` CLI on an operator's machine): everything.
OPERATOR = "operator"
SERVICES = (INFERENCE, AGENT_RUNNER, MEMORY, COST_LEDGER, CHAT_GATEWAY, INTEGRATIONS)

# Streamed replies (inference.chat) send one message per chunk to the same reply subject,
# so a responder may answer a request many times, for as long as a stream can last.
RESPONSES_MAX = 1_000_000
RESPONSES_TTL_S = 3600


@dataclass(frozen=True)
class BusPermissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # Whether the identity answers requests (publish to the reply subject it was sent).
    responds: bool = True


def inbox_prefix(identity: str) -> str:
    """The reply inbox prefix of an identity: nats-py's `inbox_prefix`, `--inbox-prefix` of
    the nats CLI. Requests made with another prefix get no reply (the server refuses the
    subscription)."""
    return f"_INBOX.{subjects.token(identity, 'identity')}"


_CI = "ci-"


def ci_identity(tenant: str) -> str:
    return f"{_CI}{subjects.token(tenant, 'tenant')}"


def ci_tenant(identity: str) -> str | None:
    """The tenant a CI publisher's identity publishes for; None for any other identity."""
    return identity.removeprefix(_CI) if identity.startswith(_CI) else None


def permissions_of(identity: str) -> BusPermissions:
    """The allow-lists of a service, the operator, or a tenant's CI publisher (`ci-<tenant>`)."""
    if identity == OPERATOR:
        return BusPermissions(publish=(">",), subscribe=(">",))
    if identity in _SERVICE_PERMISSIONS:
        own, pub, sub = _SERVICE_PERMISSIONS[identity]
        return BusPermissions(
            publish=(*pub, *own_inbox(identity)),
            subscribe=(*sub, *own_inbox(identity), *own),
        )
    tenant = ci_tenant(identity)
    if tenant is not None:
        return BusPermissions(
            publish=(f"ci.events.{subjects.token(tenant, 'tenant')}.>",),
            subscribe=own_inbox(identity),
            responds=False,
        )
    raise ValueError(f"unknown bus identity {identity!r}")


def own_inbox(identity: str) -> tuple[str, ...]:
    return (f"{inbox_prefix(identity)}.>",)


# Every service answers the micro discovery requests (`$SRV.PING|INFO|STATS`) of `revo status`.
_MICRO = ("$SRV.>",)


def _stream_admin(*streams: str) -> tuple[str, ...]:
    """Create a declared stream, or bring it to its declared config, at start-up."""
    return tuple(
        f"$JS.API.STREAM.{verb}.{stream}"
        for stream in streams
        for verb in ("INFO", "CREATE", "UPDATE")
    )


def _durable(stream: str, consumer: str) -> tuple[str, ...]:
    """Create, inspect and pull from one durable consumer; acknowledge its messages."""
    return (
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.INFO.{stream}.{consumer}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    )


def _stream_read(stream: str) -> tuple[str, ...]:
    """Read single messages of a stream (a run's event log)."""
    return (
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
    )


def _object_store(bucket: str) -> tuple[str, ...]:
    """Put, read and delete the objects of one JetStream object store bucket (its stream is
    OBJ_<bucket>; a read is an ordered consumer, delivered to the reader's own inbox)."""
    stream = f"OBJ_{bucket}"
    return (
        f"$O.{bucket}.>",
        *_stream_admin(stream),
        *_stream_read(stream),
        f"$JS.API.STREAM.PURGE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.FC.{stream}.>",
    )


CI_LOGS = _object_store(CI_LOGS_BUCKET)
_RUN_EVENTS = "runs.events.*.*"
_RUN_TOKENS = "runs.tokens.*.*"
_CANCEL_STREAMS = "_INBOX.*.*.cancel"  # a caller leaving a streamed reply (revo_core.streaming)
_AUDIT = "audit.*"  # who did what (revo_core.audit): each service records its own actions

# identity -> (subjects it serves, subjects it publishes, subjects it subscribes to)
_SERVICE_PERMISSIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    INFERENCE: (
        (subjects.INFERENCE_CHAT, subjects.INFERENCE_EMBED, subjects.INFERENCE_MODELS, *_MICRO),
        (
            "usage.*",
            subjects.LEDGER_RESERVE,
            subjects.LEDGER_SETTLE,
            *_stream_admin(USAGE.name),
        ),
        (_CANCEL_STREAMS,),
    ),
    AGENT_RUNNER: (
        (
            subjects.RUNS_CONTROL_ALL,
            subjects.RUNS_LIST,
            subjects.RUNS_GET,
            subjects.RUNS_AGENTS,
            *_MICRO,
        ),
        (
            _RUN_EVENTS,
            _RUN_TOKENS,
            subjects.INFERENCE_CHAT,
            subjects.INFERENCE_MODELS,
            subjects.MEMORY_RECALL,
            subjects.MEMORY_STORE,
            _AUDIT,
            *_stream_admin(RUNS.name, RUN_EVENTS.name, AUDIT.name),
            *_durable(RUNS.name, "agent-runner"),
            *_stream_read(RUN_EVENTS.name),
        ),
        (),
    ),
    MEMORY: (
        (
            subjects.MEMORY_STORE,
            subjects.MEMORY_RECALL,
            subjects.MEMORY_FORGET,
            subjects.MEMORY_HISTORY,
            *_MICRO,
        ),
        (subjects.INFERENCE_EMBED, _AUDIT, *_stream_admin(AUDIT.name)),
        (),
    ),
    COST_LEDGER: (
        (
            subjects.LEDGER_RESERVE,
            subjects.LEDGER_SETTLE,
            subjects.LEDGER_BUDGET,
            subjects.LEDGER_REPORT,
            subjects.LEDGER_PRICES_RELOAD,
            *_MICRO,
        ),
        (
            "alerts.*",
            "usage_dead.*",
            _AUDIT,
            *_stream_admin(USAGE.name, USAGE_DEAD.name, AUDIT.name),
            *_durable(USAGE.name, "cost-ledger"),
        ),
        (),
    ),
    CHAT_GATEWAY: (
        (
            subjects.GATEWAY_KEYS_CREATE,
            subjects.GATEWAY_KEYS_LIST,
            subjects.GATEWAY_KEYS_REVOKE,
            subjects.GATEWAY_KEYS_REVOKED,  # every replica hears a revocation
            subjects.GATEWAY_AUDIT_LIST,
            "gateway.sessions.*",
            *_MICRO,
        ),
        (
            subjects.GATEWAY_KEYS_REVOKED,
            "runs.submit.*",
            _RUN_EVENTS,  # a run's first event (queued) is written by whoever submits it
            subjects.RUNS_CONTROL_ALL,
            subjects.RUNS_LIST,
            subjects.RUNS_GET,
            subjects.RUNS_AGENTS,
            subjects.LEDGER_REPORT,
            "gateway.sessions.*",
            _AUDIT,
            *_stream_admin(AUDIT.name),
            *_durable(AUDIT.name, "chat-gateway-audit"),
            *_stream_read(RUN_EVENTS.name),
            "ci.events.*.*",  # POST /v1/ci/events
            *_stream_admin(CI_EVENTS.name),
            *CI_LOGS,
        ),
        ("runs.*.*.*",),  # follows runs: events and token deltas of every tenant's runs
    ),
    INTEGRATIONS: (
        (
            subjects.INTEGRATIONS_CONFIG_PUT,
            subjects.INTEGRATIONS_CONFIG_LIST,
            subjects.INTEGRATIONS_CONFIG_REMOVE,
            subjects.INTEGRATIONS_CONFIG_TEST,
            subjects.INTEGRATIONS_POLICY_PUT,
            subjects.INTEGRATIONS_POLICY_GET,
            subjects.INTEGRATIONS_NOTIFY_DEAD_LIST,
            subjects.INTEGRATIONS_NOTIFY_REDRIVE,
            *_MICRO,
        ),
        (
            "ci.events.*.*",  # provider webhooks
            "runs.submit.*",  # a failing CI event starts its tenant's CI agent
            _RUN_EVENTS,  # the submitted run's `queued` event
            "notify.*.*",  # a redriven dead letter goes back to its channel
            "notify_dead.*.*",
            _AUDIT,
            *_stream_admin(CI_EVENTS.name, NOTIFY.name, NOTIFY_DEAD.name, AUDIT.name),
            *_durable(CI_EVENTS.name, "integrations-ci"),
            *(d for channel in CHANNELS for d in _durable(NOTIFY.name, f"notify-{channel}")),
            *_stream_read(NOTIFY_DEAD.name),
            f"$JS.API.STREAM.MSG.DELETE.{NOTIFY_DEAD.name}",
            *_stream_read(RUN_EVENTS.name),
            *CI_LOGS,
        ),
        (),
    ),
}
