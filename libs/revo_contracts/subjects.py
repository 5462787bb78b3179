"""Every NATS subject revo uses is built here, and only here (DESIGN.md §2).

Tenant ids and run ids become subject tokens so NATS permissions can fence tenants;
they are validated so a stray '.' or '*' can never widen a subscription.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

INFERENCE_CHAT = "inference.chat"
INFERENCE_EMBED = "inference.embed"
INFERENCE_MODELS = "inference.models"
INFERENCE_QUEUE_GROUP = "inference"

USAGE_ALL = "usage.>"
# Usage events the cost ledger could not record (stream USAGE_DEAD): outside `usage.>` on
# purpose, so a dead letter is never consumed as a usage event again.
USAGE_DEAD_ALL = "usage_dead.>"

LEDGER_RESERVE = "ledger.reserve"
LEDGER_SETTLE = "ledger.settle"
LEDGER_BUDGET = "ledger.budget"
LEDGER_REPORT = "ledger.report"
LEDGER_PRICES_RELOAD = "ledger.prices.reload"
LEDGER_QUEUE_GROUP = "cost-ledger"

MEMORY_STORE = "memory.store"
MEMORY_RECALL = "memory.recall"
MEMORY_FORGET = "memory.forget"
MEMORY_HISTORY = "memory.history"
MEMORY_QUEUE_GROUP = "memory"

RUNS_SUBMIT_ALL = "runs.submit.>"
RUNS_CONTROL_ALL = "runs.control.*"
RUNS_LIST = "runs.api.list"
RUNS_GET = "runs.api.get"
RUNS_AGENTS = "runs.api.agents"
AGENT_RUNNER_QUEUE_GROUP = "agent-runner"

GATEWAY_KEYS_CREATE = "gateway.keys.create"
GATEWAY_KEYS_LIST = "gateway.keys.list"
GATEWAY_KEYS_REVOKE = "gateway.keys.revoke"
# Broadcast (core NATS, every replica): a key was revoked; its open sockets are closed.
GATEWAY_KEYS_REVOKED = "gateway.keys.revoked"
GATEWAY_AUDIT_LIST = "gateway.audit.list"
GATEWAY_QUEUE_GROUP = "chat-gateway"

CI_EVENTS_ALL = "ci.events.>"
NOTIFY_ALL = "notify.>"
# Notifications that failed every attempt (stream NOTIFY_DEAD): outside `notify.>` on
# purpose, so a dead letter is never delivered again until it is redriven.
NOTIFY_DEAD_ALL = "notify_dead.>"
INTEGRATIONS_CONFIG_PUT = "integrations.config.put"
INTEGRATIONS_CONFIG_LIST = "integrations.config.list"
INTEGRATIONS_CONFIG_REMOVE = "integrations.config.remove"
INTEGRATIONS_CONFIG_TEST = "integrations.config.test"
INTEGRATIONS_POLICY_PUT = "integrations.policy.put"
INTEGRATIONS_POLICY_GET = "integrations.policy.get"
INTEGRATIONS_NOTIFY_DEAD_LIST = "integrations.notify.dead.list"
INTEGRATIONS_NOTIFY_REDRIVE = "integrations.notify.redrive"
INTEGRATIONS_QUEUE_GROUP = "integrations"


class InvalidSubjectToken(ValueError):
    """A tenant or run id that cannot be used as a NATS subject token."""


def token(value: str, what: str = "token") -> str:
    """Return `value` if it is a safe single subject token, else raise."""
    if not _TOKEN.match(value):
        raise InvalidSubjectToken(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '_' or '-'"
        )
    return value


def usage(tenant: str) -> str:
    return f"usage.{token(tenant, 'tenant')}"


def runs_submit(tenant: str) -> str:
    return f"runs.submit.{token(tenant, 'tenant')}"


def runs_events(tenant: str, run_id: str) -> str:
    return f"runs.events.{token(tenant, 'tenant')}.{token(run_id, 'run id')}"


def runs_feed(tenant: str, run_id: str) -> str:
    """Events and token deltas of one run, in the order they were published (one core
    subscription: `runs.events.…` and `runs.tokens.…`)."""
    return f"runs.*.{token(tenant, 'tenant')}.{token(run_id, 'run id')}"


def runs_tokens(tenant: str, run_id: str) -> str:
    return f"runs.tokens.{token(tenant, 'tenant')}.{token(run_id, 'run id')}"


def gateway_session(session_id: str) -> str:
    """A chat session's live frames, from the gateway replica following its run to the
    replicas where the session's other sockets are (core NATS; the items are in Postgres)."""
    return f"gateway.sessions.{token(session_id, 'session id')}"


def runs_control(run_id: str) -> str:
    return f"runs.control.{token(run_id, 'run id')}"


def ci_events(tenant: str, provider: str) -> str:
    return f"ci.events.{token(tenant, 'tenant')}.{token(provider, 'provider')}"


def notify(channel: str, tenant: str) -> str:
    return f"notify.{token(channel, 'channel')}.{token(tenant, 'tenant')}"


def notify_dead(channel: str, tenant: str) -> str:
    return f"notify_dead.{token(channel, 'channel')}.{token(tenant, 'tenant')}"


def alerts(tenant: str) -> str:
    return f"alerts.{token(tenant, 'tenant')}"


def audit(tenant: str) -> str:
    return f"audit.{token(tenant, 'tenant')}"


def usage_dead(reason: str) -> str:
    return f"usage_dead.{token(reason, 'reason')}"
