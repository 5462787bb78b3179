-- The integrations service's own schema (DESIGN.md §1): tenants' integrations, secrets
-- encrypted (Fernet) in `secrets`; the other fields in `settings`. Idempotent.
CREATE SCHEMA IF NOT EXISTS integrations;

CREATE TABLE IF NOT EXISTS integrations.configs (
    tenant     text NOT NULL,
    kind       text NOT NULL,
    settings   jsonb NOT NULL,
    secrets    bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, kind)
);
