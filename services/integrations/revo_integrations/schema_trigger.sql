-- The CI trigger's tables (docs/services/integrations-trigger.md). Idempotent.
CREATE SCHEMA IF NOT EXISTS integrations;

-- Each tenant's CI policy (revo_contracts.integrations.CiPolicy as JSON); a tenant without
-- a row gets the default policy.
CREATE TABLE IF NOT EXISTS integrations.ci_policies (
    tenant     text PRIMARY KEY,
    policy     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The failure a tenant's window belongs to: one row per (tenant, failure signature), taken
-- by an atomic upsert, so two replicas or a redelivery never start the same failure twice.
-- `signature_key` is the sha256 of CiEvent.failure_signature() (a signature can be longer
-- than a btree key may be).
CREATE TABLE IF NOT EXISTS integrations.ci_failures (
    tenant        text NOT NULL,
    signature_key text NOT NULL,
    signature     text NOT NULL,
    event_id      text NOT NULL,
    run_id        text NOT NULL,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, signature_key)
);

-- The runs the trigger has submitted (written once the RUNS stream acked the run): a
-- redelivered event whose run is here is not submitted again, however late it comes.
CREATE TABLE IF NOT EXISTS integrations.ci_runs (
    run_id       text PRIMARY KEY,
    tenant       text NOT NULL,
    event_id     text NOT NULL,
    provider     text NOT NULL,
    agent        text NOT NULL,
    signature    text NOT NULL,
    submitted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ci_runs_tenant_submitted ON integrations.ci_runs (tenant, submitted_at);
