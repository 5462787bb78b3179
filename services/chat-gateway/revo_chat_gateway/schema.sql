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
-- Which of its run's items an item is: the run event's seq for an `event` item, 0 for the
-- run's `user` and `assistant` items (one of each per run). Unique, so a run's items are
-- stored once however many replicas follow it (a gateway adopting the runs of one that was
-- killed replays the run's log). Rows from before the column get theirs once, as the index
-- is made (one replica followed each run then, so none is there twice).
ALTER TABLE gateway.session_items ADD COLUMN IF NOT EXISTS run_seq integer;
DO $$
BEGIN
    IF to_regclass('gateway.session_items_run_item') IS NULL THEN
        UPDATE gateway.session_items
        SET run_seq = CASE kind WHEN 'event' THEN (body->'event'->>'seq')::integer ELSE 0 END
        WHERE run_id IS NOT NULL AND run_seq IS NULL;
        CREATE UNIQUE INDEX session_items_run_item
            ON gateway.session_items (run_id, kind, run_seq) WHERE run_id IS NOT NULL;
    END IF;
END $$;
-- The runs taken up at start: user messages (one per run) by age.
CREATE INDEX IF NOT EXISTS session_items_user_created
    ON gateway.session_items (created_at) WHERE kind = 'user';

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
