-- Runs started by the CI trigger whose outcome is to be announced (outcomes.py).
CREATE TABLE IF NOT EXISTS integrations.announcements (
    run_id     text PRIMARY KEY,
    tenant     text NOT NULL,
    channels   text[] NOT NULL,
    event      jsonb NOT NULL,
    -- pending, announced, expired (never ended within a day)
    state      text NOT NULL DEFAULT 'pending',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS announcements_pending
    ON integrations.announcements (created_at) WHERE state = 'pending';
