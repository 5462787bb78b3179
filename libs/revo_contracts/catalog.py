"""The catalog of messages and subjects: what `make proto` publishes into proto/.

Adding a message family means adding its Structs to MESSAGES and its subjects to
CHANNELS; the proto drift test then asks for `make proto`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from revo_contracts import (
    audit,
    chat,
    ci,
    gateway,
    inference,
    integrations,
    ledger,
    memory,
    notify,
    runs,
    subjects,
    usage,
)
from revo_contracts.errors import Error

MESSAGES: tuple[type[msgspec.Struct], ...] = (
    runs.RunSubmit,
    runs.TokenDelta,
    runs.ControlAck,
    runs.RunListRequest,
    runs.RunListResponse,
    runs.RunGetRequest,
    runs.RunDetail,
    runs.AgentListRequest,
    runs.AgentListResponse,
    runs.AgentInfo,
    inference.ChatRequest,
    inference.ChatChunk,
    inference.EmbedRequest,
    inference.EmbedResponse,
    inference.ModelsRequest,
    inference.ModelsResponse,
    inference.ModelInfo,
    usage.UsageEvent,
    ledger.BudgetRequest,
    ledger.BudgetStatus,
    ledger.ReserveRequest,
    ledger.Reservation,
    ledger.SettleRequest,
    ledger.Settlement,
    ledger.ReportRequest,
    ledger.CostReport,
    ledger.SpendRow,
    ledger.SpendTotals,
    ledger.RunCost,
    ledger.PricesReloadRequest,
    ledger.PricesInfo,
    ledger.BudgetAlert,
    ledger.UsageDeadLetter,
    gateway.KeyCreateRequest,
    gateway.KeyCreateResponse,
    gateway.KeyListRequest,
    gateway.KeyListResponse,
    gateway.KeyInfo,
    gateway.KeyRevokeRequest,
    gateway.KeyRevokeResponse,
    gateway.KeyRevoked,
    audit.AuditEvent,
    audit.AuditListRequest,
    audit.AuditListResponse,
    chat.ChatHello,
    chat.ChatUserMessage,
    chat.ChatCancel,
    chat.ChatPing,
    chat.ChatSession,
    chat.ChatItem,
    chat.ChatToken,
    chat.ChatError,
    chat.ChatPong,
    memory.MemoryStoreRequest,
    memory.MemoryStoreResponse,
    memory.MemoryRecallRequest,
    memory.MemoryRecallResponse,
    memory.MemoryForgetRequest,
    memory.MemoryForgetResponse,
    memory.MemoryHistoryRequest,
    memory.MemoryHistoryResponse,
    ci.CiEvent,
    notify.Notification,
    notify.DeadNotification,
    notify.NotifyDeadListRequest,
    notify.NotifyDeadLetter,
    notify.NotifyDeadListResponse,
    notify.NotifyRedriveRequest,
    integrations.IntegrationPut,
    integrations.IntegrationRef,
    integrations.IntegrationListRequest,
    integrations.IntegrationListResponse,
    integrations.IntegrationTestResult,
    integrations.PolicyPut,
    integrations.PolicyGet,
    integrations.CiPolicy,
    integrations.Done,
    Error,
)

# Tagged unions: one schema each, with `type` naming the member.
UNIONS: dict[str, Any] = {
    "RunEvent": runs.RunEvent,
    "RunControl": runs.RunControl,
    "ChatClientFrame": chat.ChatClientFrame,
    "ChatServerFrame": chat.ChatServerFrame,
    "Integration": integrations.Integration,
}


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    description: str
    sends: str
    replies: tuple[str, ...] = ()
    reply_is_stream: bool = False


CHANNELS: tuple[Channel, ...] = (
    Channel(
        address=subjects.INFERENCE_CHAT,
        description="Chat completion; the reply is a stream of ChatChunk on the caller's "
        "inbox, then an empty Revo-Stream: end message; the last chunk has usage. Queue group "
        "'inference'. Errors: Error body with Nats-Service-Error-Code.",
        sends="ChatRequest",
        replies=("ChatChunk", "Error"),
        reply_is_stream=True,
    ),
    Channel(
        address=subjects.INFERENCE_EMBED,
        description="Embeddings of up to 256 texts (request/reply).",
        sends="EmbedRequest",
        replies=("EmbedResponse", "Error"),
    ),
    Channel(
        address=subjects.INFERENCE_MODELS,
        description="The models this inference replica serves (request/reply).",
        sends="ModelsRequest",
        replies=("ModelsResponse", "Error"),
    ),
    Channel(
        address="usage.{tenant}",
        description="One usage event per inference request; stream USAGE, "
        "Nats-Msg-Id = request id (duplicates within the window are dropped).",
        sends="UsageEvent",
    ),
    Channel(
        address=subjects.LEDGER_RESERVE,
        description="Hold an estimated cost against the tenant's budget (and its key's) before "
        "a paid call; answers budget_exceeded when it does not fit (details.reason: "
        "budget_exceeded or no_budget). Atomic across callers and replicas. Queue group "
        "'cost-ledger'.",
        sends="ReserveRequest",
        replies=("Reservation", "Error"),
    ),
    Channel(
        address=subjects.LEDGER_SETTLE,
        description="Replace a hold with the actual cost (0 releases it); the request's usage "
        "event closes the hold when recorded. Queue group 'cost-ledger'.",
        sends="SettleRequest",
        replies=("Settlement", "Error"),
    ),
    Channel(
        address=subjects.LEDGER_BUDGET,
        description="Get, set or delete a tenant's (or API key's) budget: a limit per day or "
        "month, with what is spent and held in the current period. Queue group 'cost-ledger'.",
        sends="BudgetRequest",
        replies=("BudgetStatus", "Error"),
    ),
    Channel(
        address=subjects.LEDGER_REPORT,
        description="Spend by day, tenant, model and provider; local share of tokens; savings "
        "versus the reference cloud model; top runs by cost. Queue group 'cost-ledger'.",
        sends="ReportRequest",
        replies=("CostReport", "Error"),
    ),
    Channel(
        address=subjects.LEDGER_PRICES_RELOAD,
        description="Reload the price table of the replica that answers (every replica also "
        "reloads when the file changes, and on SIGHUP); a table with errors is rejected and "
        "the last good one stays in force.",
        sends="PricesReloadRequest",
        replies=("PricesInfo", "Error"),
    ),
    Channel(
        address="alerts.{tenant}",
        description="Budget alerts: recorded spend crossed 50, 80 or 100% of a budget; once "
        "per threshold per period (core NATS; Nats-Msg-Id = budget-<alert id>).",
        sends="BudgetAlert",
    ),
    Channel(
        address="usage_dead.{reason}",
        description="Usage events the cost ledger could not record, with the reason and the "
        "original bytes; stream USAGE_DEAD (header Revo-Dead-Reason).",
        sends="UsageDeadLetter",
    ),
    Channel(
        address="runs.submit.{tenant}",
        description="Submit a run; stream RUNS (work queue), taken by one agent-runner "
        "replica and acked when the run has ended. Nats-Msg-Id = run id.",
        sends="RunSubmit",
    ),
    Channel(
        address="runs.events.{tenant}.{run}",
        description="Every step of a run, numbered by seq; stream RUN_EVENTS (replayable).",
        sends="RunEvent",
    ),
    Channel(
        address="runs.tokens.{tenant}.{run}",
        description="Token deltas of a run as they stream from inference (core NATS).",
        sends="TokenDelta",
    ),
    Channel(
        address="runs.control.{run}",
        description="Cancel a run, or answer the question it is waiting on. Every "
        "agent-runner replica hears it and records it; sent as a request, the replica "
        "holding the run replies with a ControlAck.",
        sends="RunControl",
        replies=("ControlAck",),
    ),
    Channel(
        address=subjects.RUNS_LIST,
        description="List runs, newest first, from the agent-runner's Postgres copy "
        "(request/reply, queue group 'agent-runner').",
        sends="RunListRequest",
        replies=("RunListResponse", "Error"),
    ),
    Channel(
        address=subjects.GATEWAY_KEYS_CREATE,
        description="Create an API key for a tenant (operators, over NATS; `revo keys "
        "create`). The key is in the reply once; the gateway keeps only a hash.",
        sends="KeyCreateRequest",
        replies=("KeyCreateResponse", "Error"),
    ),
    Channel(
        address=subjects.GATEWAY_KEYS_LIST,
        description="The API keys of a tenant, or of every tenant (operators; `revo keys "
        "list`): ids, roles, names, expiry, last use, revocation; never a secret.",
        sends="KeyListRequest",
        replies=("KeyListResponse", "Error"),
    ),
    Channel(
        address=subjects.GATEWAY_KEYS_REVOKE,
        description="Revoke an API key by its id (operators; `revo keys revoke`); "
        "idempotent. Every gateway replica refuses the key from then on.",
        sends="KeyRevokeRequest",
        replies=("KeyRevokeResponse", "Error"),
    ),
    Channel(
        address=subjects.GATEWAY_KEYS_REVOKED,
        description="Broadcast by the replica that revoked a key, heard by every replica "
        "(core NATS): each closes the chat sockets opened with that key.",
        sends="KeyRevoked",
    ),
    Channel(
        address="audit.{tenant}",
        description="Who did what (key created, budget set, run cancelled, memory forgotten, "
        "credentials issued, ...); stream AUDIT, Nats-Msg-Id = event id; never a secret. The "
        "chat gateway keeps it in its audit table.",
        sends="AuditEvent",
    ),
    Channel(
        address=subjects.GATEWAY_AUDIT_LIST,
        description="The audit log, newest first, by tenant, time and action (operators, over "
        "NATS; `revo audit`). Queue group 'chat-gateway'.",
        sends="AuditListRequest",
        replies=("AuditListResponse", "Error"),
    ),
    Channel(
        address=subjects.RUNS_GET,
        description="One run with its event log (request/reply, queue group 'agent-runner').",
        sends="RunGetRequest",
        replies=("RunDetail", "Error"),
    ),
    Channel(
        address=subjects.RUNS_AGENTS,
        description="The agents the agent-runner runs, with their descriptions and tools "
        "(request/reply, queue group 'agent-runner'; the gateway's /v1/models).",
        sends="AgentListRequest",
        replies=("AgentListResponse", "Error"),
    ),
    Channel(
        address="gateway.sessions.{session}",
        description="A chat session's live frames (ChatItem, ChatToken as JSON), from the "
        "gateway replica following its run to the replicas holding the session's other "
        "sockets (core NATS; header Revo-Gateway-Replica names the sender).",
        sends="ChatServerFrame",
    ),
    Channel(
        address="/v1/ws",
        description="WebSocket chat on the gateway (not NATS): JSON text frames. The client "
        "sends ChatClientFrame (hello, message, cancel, ping); the server sends "
        "ChatServerFrame: session, the session's items numbered from 1 (stored; resume with "
        "hello {session_id, last_seq}), live text tokens (not stored), error, pong.",
        sends="ChatClientFrame",
        replies=("ChatServerFrame",),
        reply_is_stream=True,
    ),
    Channel(
        address=subjects.MEMORY_STORE,
        description="Store memories (one embedding call for the batch) in a scope: tenant, "
        "optionally repository, agent, user. A text as similar as the service's threshold "
        "to a memory of the same scope becomes that memory's new version. Errors: "
        "invalid_request, upstream_error (inference.embed down; nothing written). Queue "
        "group 'memory'.",
        sends="MemoryStoreRequest",
        replies=("MemoryStoreResponse", "Error"),
    ),
    Channel(
        address=subjects.MEMORY_RECALL,
        description="Memories relevant to a query (vector similarity + full-text keyword "
        "match), best first, filtered, cut to the caller's token budget. Queue group 'memory'.",
        sends="MemoryRecallRequest",
        replies=("MemoryRecallResponse", "Error"),
    ),
    Channel(
        address=subjects.MEMORY_FORGET,
        description="Delete a tenant's memories by id or by filter, with their history. "
        "Queue group 'memory'.",
        sends="MemoryForgetRequest",
        replies=("MemoryForgetResponse", "Error"),
    ),
    Channel(
        address=subjects.MEMORY_HISTORY,
        description="Every version of one memory of the tenant, oldest first (not_found for "
        "another tenant's). Queue group 'memory'.",
        sends="MemoryHistoryRequest",
        replies=("MemoryHistoryResponse", "Error"),
    ),
    Channel(
        address="ci.events.{tenant}.{provider}",
        description="A CI outcome (provider webhooks via the integrations service, POST "
        "/v1/ci/events via the chat gateway, or a CI publisher's own credential, which may "
        "publish only its tenant's); stream CI_EVENTS, Nats-Msg-Id = event id. Logs over "
        "64 KiB are in the CI_LOGS object store (gzip).",
        sends="CiEvent",
    ),
    Channel(
        address="notify.{channel}.{tenant}",
        description="A notification for the integrations service to deliver (github, "
        "slack, jira, webhook); stream NOTIFY, Nats-Msg-Id = notification id (the "
        "idempotency key). At least once, never posted twice where the destination allows.",
        sends="Notification",
    ),
    Channel(
        address="notify_dead.{channel}.{tenant}",
        description="A notification that failed every attempt, with its last error; stream "
        "NOTIFY_DEAD, until `revo notify redrive` sends it again.",
        sends="DeadNotification",
    ),
    Channel(
        address=subjects.INTEGRATIONS_CONFIG_PUT,
        description="Add or replace a tenant's integration (operators; `revo integrations "
        "add`). Secrets are stored encrypted. Queue group 'integrations'.",
        sends="IntegrationPut",
        replies=("Done", "Error"),
    ),
    Channel(
        address=subjects.INTEGRATIONS_CONFIG_LIST,
        description="A tenant's integrations (or every tenant's), secrets masked (operators).",
        sends="IntegrationListRequest",
        replies=("IntegrationListResponse", "Error"),
    ),
    Channel(
        address=subjects.INTEGRATIONS_CONFIG_REMOVE,
        description="Remove a tenant's integration of one kind (operators).",
        sends="IntegrationRef",
        replies=("Done", "Error"),
    ),
    Channel(
        address=subjects.INTEGRATIONS_CONFIG_TEST,
        description="Send a real test notification through a tenant's integration and "
        "answer what the destination said (operators; `revo integrations test`).",
        sends="IntegrationRef",
        replies=("IntegrationTestResult", "Error"),
    ),
    Channel(
        address=subjects.INTEGRATIONS_NOTIFY_DEAD_LIST,
        description="Dead letters of notifications (stream NOTIFY_DEAD), oldest first, with "
        "their last error (operators; `revo notify dead`). Queue group 'integrations'.",
        sends="NotifyDeadListRequest",
        replies=("NotifyDeadListResponse", "Error"),
    ),
    Channel(
        address=subjects.INTEGRATIONS_NOTIFY_REDRIVE,
        description="Send dead letters again: one notification by id, or all (of a tenant); "
        "each is republished to notify.<channel>.<tenant> (a fresh Nats-Msg-Id, the same "
        "notification id) and deleted from NOTIFY_DEAD; answers how many (operators; "
        "`revo notify redrive`). not_found when the id has no dead letter.",
        sends="NotifyRedriveRequest",
        replies=("Done", "Error"),
    ),
    Channel(
        address=subjects.INTEGRATIONS_POLICY_PUT,
        description="Set a tenant's CI policy: which repositories and branches start a run "
        "of which agent, the window of one run per failure, where to notify (operators).",
        sends="PolicyPut",
        replies=("CiPolicy", "Error"),
    ),
    Channel(
        address=subjects.INTEGRATIONS_POLICY_GET,
        description="A tenant's CI policy (the default when none was set) (operators).",
        sends="PolicyGet",
        replies=("CiPolicy", "Error"),
    ),
)


def message_types() -> dict[str, Any]:
    """Every message of the catalog by name: Structs and tagged unions."""
    return {**{m.__name__: m for m in MESSAGES}, **UNIONS}


def message_schema(name: str, message: Any) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) of one message."""
    schema = msgspec.json.schema(message)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = name
    return schema
