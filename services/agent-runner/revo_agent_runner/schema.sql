-- The agent-runner's copy of runs and their event logs (applied at start-up, idempotent).
CREATE SCHEMA IF NOT EXISTS agents;

CREATE TABLE IF NOT EXISTS agents.runs (
    run_id        text PRIMARY KEY,
    tenant        text NOT NULL,
    agent         text NOT NULL,
    status        text NOT NULL DEFAULT 'queued',
    task          text,
    session_id    text,
    submit        jsonb NOT NULL,
    created_at    double precision NOT NULL,
    started_at    double precision,
    ended_at      double precision,
    attempts      integer NOT NULL DEFAULT 0,
    steps         integer NOT NULL DEFAULT 0,
    total_tokens  integer NOT NULL DEFAULT 0,
    answer        text,
    error_code    text,
    error_reason  text,
    -- The replica executing the run and until when its claim holds (renewed by heartbeats):
    -- a redelivered run whose owner is still alive is not started a second time.
    owner         text,
    lease_until   timestamptz
);
CREATE INDEX IF NOT EXISTS runs_tenant_created ON agents.runs (tenant, created_at DESC);
CREATE INDEX IF NOT EXISTS runs_created ON agents.runs (created_at DESC);
-- A gateway caller's own runs (RunListRequest.owner).
CREATE INDEX IF NOT EXISTS runs_owner ON agents.runs (tenant, (submit->>'owner'), created_at DESC);
-- Runs not ended, for the reconciler's look for rows left running (reconcile.py).
CREATE INDEX IF NOT EXISTS runs_unended ON agents.runs (created_at)
    WHERE status NOT IN ('finished', 'failed', 'cancelled');
CREATE INDEX IF NOT EXISTS runs_session ON agents.runs (tenant, session_id, created_at)
    WHERE session_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS agents.events (
    run_id  text NOT NULL,
    seq     integer NOT NULL,
    type    text NOT NULL,
    ts      double precision NOT NULL,
    body    jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Cancel and answer messages, kept so a run picked up or resumed later still obeys them.
CREATE TABLE IF NOT EXISTS agents.controls (
    id          bigserial PRIMARY KEY,
    run_id      text NOT NULL,
    kind        text NOT NULL,
    body        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS controls_run ON agents.controls (run_id, id);
