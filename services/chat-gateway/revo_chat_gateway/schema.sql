-- The chat gateway's state (applied at start-up, idempotent).
CREATE SCHEMA IF NOT EXISTS gateway;

-- API keys: the key is shown once; only a hash of its secret part is kept.
CREATE TABLE IF NOT EXISTS gateway.api_keys (
    key_id       text PRIMARY KEY,
    tenant       text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'member')),
    secret_hash  bytea NOT NULL,
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON gateway.api_keys (tenant);

-- WebSocket chat sessions: each belongs to one tenant; its items are numbered from 1.
CREATE TABLE IF NOT EXISTS gateway.sessions (
    session_id   text PRIMARY KEY,
    tenant       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS gateway.session_items (
    session_id   text NOT NULL REFERENCES gateway.sessions ON DELETE CASCADE,
    seq          integer NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('user', 'assistant', 'event')),
    run_id       text,
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX IF NOT EXISTS sessions_tenant_created ON gateway.sessions (tenant, created_at DESC);

-- The audit log (stream AUDIT, `audit.<tenant>`): who did what, append-only. Written only by
-- the audit consumer; an event redelivered by JetStream is stored once (its id).
CREATE TABLE IF NOT EXISTS gateway.audit (
    event_id     text PRIMARY KEY,
    tenant       text NOT NULL,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL DEFAULT '',
    service      text NOT NULL DEFAULT '',
    details      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_tenant_at ON gateway.audit (tenant, at DESC);
CREATE INDEX IF NOT EXISTS audit_at ON gateway.audit (at DESC);
