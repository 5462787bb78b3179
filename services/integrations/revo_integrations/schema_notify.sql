-- Notifications out: what each notification already did at its destination, so a
-- redelivered notification is never posted twice where the destination allows (it updates
-- instead), and a re-run of the same failure updates the same GitHub comment / comments on
-- the same Jira issue. Idempotent.
CREATE SCHEMA IF NOT EXISTS integrations;

CREATE TABLE IF NOT EXISTS integrations.notify_deliveries (
    tenant          text NOT NULL,
    channel         text NOT NULL,
    notification_id text NOT NULL,
    -- pending (being delivered or waiting for a retry), delivered, dead
    state           text NOT NULL DEFAULT 'pending',
    -- times a delivery was started (a started attempt may have reached the destination
    -- even if this service died before hearing back) and times one failed
    attempts        integer NOT NULL DEFAULT 0,
    failures        integer NOT NULL DEFAULT 0,
    -- what the destination made, step by step: {"check_run_id": .., "comment_id": ..}
    posted          jsonb NOT NULL DEFAULT '{}',
    last_error      text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, channel, notification_id)
);

-- A failure signature's post at one destination: the GitHub comment a re-run updates,
-- the Jira issue the next notification comments on.
CREATE TABLE IF NOT EXISTS integrations.notify_threads (
    tenant      text NOT NULL,
    channel     text NOT NULL,
    destination text NOT NULL,
    signature   text NOT NULL,
    ref         text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, channel, destination, signature)
);
