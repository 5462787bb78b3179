-- The chat gateway's state (applied at start-up, idempotent).
CREATE SCHEMA IF NOT EXISTS gateway;

-- API keys: the key is shown once; only a hash of its secret part is kept.
CREATE TABLE IF NOT EXISTS gateway.api_keys (
    key_id       text PRIMARY KEY,
    tenant       text NOT NULL,
    role         text NOT NULL,
    secret_hash  bytea NOT NULL,
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON gateway.api_keys (tenant);
-- Added after the table: a key's expiry (none: until revoked) and its last use (written at
-- most once a minute).
ALTER TABLE gateway.api_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE gateway.api_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz;
-- The roles of permissions.py. A database made before viewer and ci has a narrower check
-- (api_keys_role_check): it is replaced once, not at every start (each replacement locks
-- the table and reads it whole). A change of roles takes a constraint of a new name.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'api_keys_roles'
                   AND conrelid = 'gateway.api_keys'::regclass) THEN
        ALTER TABLE gateway.api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
        ALTER TABLE gateway.api_keys ADD CONSTRAINT api_keys_roles
            CHECK (role IN ('admin', 'member', 'viewer', 'ci'));
    END IF;
END $$;

-- WebSocket chat sessions: each belongs to one tenant and to the user who opened it
-- (`api_key:<key id>` or `jwt:<subject>`); its items are numbered from 1.
CREATE TABLE IF NOT EXISTS gateway.sessions (
    session_id   text PRIMARY KEY,
    tenant       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- Sessions opened before owners were kept have none: only admins see them.
ALTER TABLE gateway.sessions ADD COLUMN IF NOT EXISTS owner text;
CREATE INDEX IF NOT EXISTS sessions_tenant_owner
    ON gateway.sessions (tenant, owner, created_at DESC);
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
