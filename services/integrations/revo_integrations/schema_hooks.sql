-- Provider webhooks accepted by the integrations service (webhooks.py, deliveries.py).
-- One row per (provider, tenant, delivery id): a redelivery finds its row and is refused
-- as a duplicate. A row is written before the webhook is answered, so an accepted delivery
-- survives the service's death: `pending` rows (a log still to fetch, or a publish that
-- did not get its ack) are completed by whichever replica holds their lease, or takes it
-- over once it lapses. Idempotent.
CREATE SCHEMA IF NOT EXISTS integrations;

CREATE TABLE IF NOT EXISTS integrations.hook_deliveries (
    provider     text NOT NULL,
    tenant       text NOT NULL,
    delivery_id  text NOT NULL,
    event_id     text NOT NULL,
    -- pending: accepted, the CiEvent not yet acknowledged by CI_EVENTS; published: done.
    state        text NOT NULL DEFAULT 'pending',
    -- msgspec JSON of deliveries.PendingDelivery: the CiEvent, the logs to fetch, the
    -- webhook's trace context (no credentials: those are read from the config when used).
    work         bytea NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text NOT NULL DEFAULT '',
    lease_until  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (provider, tenant, delivery_id)
);

CREATE INDEX IF NOT EXISTS hook_deliveries_pending
    ON integrations.hook_deliveries (lease_until) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS hook_deliveries_received
    ON integrations.hook_deliveries (received_at);
