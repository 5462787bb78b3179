-- The cost ledger's schema (applied at start-up, idempotent). Money is in pico-dollars
-- (USD x 10^12, bigint): exact for prices with up to six decimals per 1M tokens. Days and
-- periods are UTC.
CREATE SCHEMA IF NOT EXISTS ledger;

-- One row per usage event, recorded once: event_id is the dedupe key, whatever JetStream's
-- window did. Only the primary key and a BRIN index on day (rows come in day order): the
-- table takes tens of thousands of rows a second, and reports read usage_daily instead.
CREATE TABLE IF NOT EXISTS ledger.usage (
    event_id           text PRIMARY KEY,
    tenant             text NOT NULL,
    api_key_id         text,
    request_id         text NOT NULL,
    run_id             text,
    model              text NOT NULL,
    provider           text NOT NULL,
    kind               text NOT NULL,
    prompt_tokens      integer NOT NULL,
    completion_tokens  integer NOT NULL,
    cost_pico          bigint NOT NULL,
    -- What the same tokens cost on the price table's reference cloud model.
    cloud_pico         bigint NOT NULL,
    -- false: the price table did not know the model; recorded at cost 0.
    priced             boolean NOT NULL,
    route_reason       text,
    created_at         double precision NOT NULL,
    day                date NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS usage_day ON ledger.usage USING brin (day);

-- Spend per (tenant, day, key, model, provider, kind), kept in the same transaction as the
-- rows: budgets and reports add up a few of these instead of every usage row. Each batch
-- writer adds to its own `shard` of a row, so that concurrent batches (which touch the same
-- tenants and days) never wait for each other's row locks; readers sum the shards.
CREATE TABLE IF NOT EXISTS ledger.usage_daily (
    tenant             text NOT NULL,
    day                date NOT NULL,
    api_key_id         text NOT NULL,  -- '' when the event named no key
    model              text NOT NULL,
    provider           text NOT NULL,
    kind               text NOT NULL,
    shard              smallint NOT NULL,
    events             bigint NOT NULL,
    prompt_tokens      bigint NOT NULL,
    completion_tokens  bigint NOT NULL,
    cost_pico          bigint NOT NULL,
    cloud_pico         bigint NOT NULL,
    unpriced_events    bigint NOT NULL,
    PRIMARY KEY (tenant, day, api_key_id, model, provider, kind, shard)
);
CREATE INDEX IF NOT EXISTS usage_daily_day ON ledger.usage_daily (day);

-- A budget per tenant (api_key_id '') and optionally per key of the tenant.
CREATE TABLE IF NOT EXISTS ledger.budgets (
    tenant      text NOT NULL,
    api_key_id  text NOT NULL DEFAULT '',
    period      text NOT NULL CHECK (period IN ('day', 'month')),
    limit_pico  bigint NOT NULL CHECK (limit_pico >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, api_key_id)
);

-- Money held by ledger.reserve. 'held' (the estimate) and 'settled' (the actual cost)
-- count against budgets until they expire or the request's usage event is recorded
-- ('recorded'); 'released' (settled at 0) and 'expired' count no more.
CREATE TABLE IF NOT EXISTS ledger.holds (
    reservation_id  text PRIMARY KEY,
    tenant          text NOT NULL,
    api_key_id      text NOT NULL DEFAULT '',
    request_id      text,
    amount_pico     bigint NOT NULL CHECK (amount_pico >= 0),
    status          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    closed_at       timestamptz
);
CREATE INDEX IF NOT EXISTS holds_open ON ledger.holds (tenant, api_key_id)
    WHERE status IN ('held', 'settled');
CREATE INDEX IF NOT EXISTS holds_open_request ON ledger.holds (tenant, request_id)
    WHERE status IN ('held', 'settled');
CREATE INDEX IF NOT EXISTS holds_closed ON ledger.holds (closed_at)
    WHERE status NOT IN ('held', 'settled');

-- Budget alerts, once per (budget, period, threshold): the unique key is what keeps a
-- restarted ledger from repeating one. published_at is set once it went out on NATS; one
-- still NULL (a crash between commit and publish) is sent at the next start.
CREATE TABLE IF NOT EXISTS ledger.alerts (
    id            bigserial PRIMARY KEY,
    tenant        text NOT NULL,
    api_key_id    text NOT NULL,
    period        text NOT NULL,
    period_start  date NOT NULL,
    threshold     integer NOT NULL,
    spent_pico    bigint NOT NULL,
    limit_pico    bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    UNIQUE (tenant, api_key_id, period, period_start, threshold)
);
CREATE INDEX IF NOT EXISTS alerts_unpublished ON ledger.alerts (id) WHERE published_at IS NULL;

CREATE OR REPLACE FUNCTION ledger.period_start(p_period text, p_at timestamptz DEFAULT now())
RETURNS date LANGUAGE sql STABLE AS $$
    SELECT date_trunc(p_period, p_at AT TIME ZONE 'UTC')::date
$$;

CREATE OR REPLACE FUNCTION ledger.period_end(p_period text, p_at timestamptz DEFAULT now())
RETURNS date LANGUAGE sql STABLE AS $$
    SELECT (date_trunc(p_period, p_at AT TIME ZONE 'UTC') + ('1 ' || p_period)::interval)::date
$$;

-- What counts against a budget now: recorded spend in its current period, and open holds.
CREATE OR REPLACE FUNCTION ledger.committed(p_tenant text, p_key text, p_period text)
RETURNS TABLE (spent_pico numeric, held_pico numeric) LANGUAGE sql STABLE AS $$
    SELECT
        (SELECT coalesce(sum(d.cost_pico), 0) FROM ledger.usage_daily d
          WHERE d.tenant = p_tenant
            AND d.day >= ledger.period_start(p_period) AND d.day < ledger.period_end(p_period)
            AND (p_key = '' OR d.api_key_id = p_key)),
        (SELECT coalesce(sum(h.amount_pico), 0) FROM ledger.holds h
          WHERE h.tenant = p_tenant AND h.status IN ('held', 'settled') AND h.expires_at > now()
            AND (p_key = '' OR h.api_key_id = p_key))
$$;

-- Decide a batch of reservations, in order, in one call. Every budget the batch touches is
-- locked first (one order for all callers: batches never deadlock), then what each budget
-- has committed is read (after the lock: every earlier decision is visible), then each
-- request is granted if it fits every budget that applies to it (the tenant's and its
-- key's), and its hold counts for the requests after it.
DROP FUNCTION IF EXISTS ledger.reserve(text[], text[], text[], text[], bigint[],
    double precision[], boolean);
CREATE OR REPLACE FUNCTION ledger.reserve(
    p_ids text[], p_tenants text[], p_keys text[], p_requests text[], p_amounts bigint[],
    p_ttls double precision[], p_allow_unbudgeted boolean, p_durable boolean DEFAULT true)
RETURNS TABLE (
    reservation_id text, outcome text, budget_key text, limit_pico bigint,
    committed_pico numeric, expires_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    names text[] := '{}';
    limits bigint[] := '{}';
    used numeric[] := '{}';
    existing text[];
    b record;
    c record;
    i int;
    slot int;
    slots int[];
    failed int;
    held_ids text[] := '{}';
    held_n int[] := '{}';
BEGIN
    IF NOT p_durable THEN
        -- The caller traded durability for latency: a Postgres crash may lose the holds of
        -- the last fraction of a second (a ledger crash loses nothing either way).
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    FOR b IN
        SELECT bg.tenant, bg.api_key_id, bg.period, bg.limit_pico FROM ledger.budgets bg
         WHERE (bg.tenant, bg.api_key_id) IN (
                SELECT t, '' FROM unnest(p_tenants) AS t
                UNION SELECT t, k FROM unnest(p_tenants, p_keys) AS x(t, k) WHERE k <> '')
         ORDER BY bg.tenant, bg.api_key_id
           FOR UPDATE
    LOOP
        SELECT * INTO c FROM ledger.committed(b.tenant, b.api_key_id, b.period);
        names := names || (b.tenant || '/' || b.api_key_id);
        limits := limits || b.limit_pico;
        used := used || (c.spent_pico + c.held_pico);
    END LOOP;

    SELECT coalesce(array_agg(h.reservation_id), '{}') INTO existing
      FROM ledger.holds h WHERE h.reservation_id = ANY(p_ids);

    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        reservation_id := p_ids[i];
        budget_key := NULL; limit_pico := NULL; committed_pico := NULL;
        expires_at := now() + make_interval(secs => p_ttls[i]);
        IF p_ids[i] = ANY(existing) OR p_ids[i] = ANY(held_ids) THEN
            outcome := 'exists';
            RETURN NEXT;
            CONTINUE;
        END IF;
        slots := array_remove(ARRAY[
            array_position(names, p_tenants[i] || '/'),
            CASE WHEN p_keys[i] <> '' THEN array_position(names, p_tenants[i] || '/' || p_keys[i]) END
        ], NULL);
        failed := NULL;
        FOREACH slot IN ARRAY slots LOOP
            IF used[slot] + p_amounts[i] > limits[slot] THEN
                failed := slot;
                EXIT;
            END IF;
        END LOOP;
        IF failed IS NOT NULL THEN
            outcome := 'budget_exceeded';
            budget_key := names[failed]; limit_pico := limits[failed];
            committed_pico := used[failed];
        ELSIF cardinality(slots) = 0 AND NOT p_allow_unbudgeted THEN
            outcome := 'no_budget';
        ELSE
            outcome := 'granted';
            FOREACH slot IN ARRAY slots LOOP
                used[slot] := used[slot] + p_amounts[i];
            END LOOP;
            -- The tightest budget: what is left after this hold.
            IF cardinality(slots) > 0 THEN
                SELECT s INTO slot FROM unnest(slots) AS s ORDER BY limits[s] - used[s] LIMIT 1;
                budget_key := names[slot]; limit_pico := limits[slot];
                committed_pico := used[slot];
            END IF;
            held_ids := held_ids || p_ids[i];
            held_n := held_n || i;
        END IF;
        RETURN NEXT;
    END LOOP;

    INSERT INTO ledger.holds (reservation_id, tenant, api_key_id, request_id, amount_pico,
                              status, expires_at)
    SELECT p_ids[n], p_tenants[n], p_keys[n], p_requests[n], p_amounts[n], 'held',
           now() + make_interval(secs => p_ttls[n])
      FROM unnest(held_n) AS n;
END
$$;

-- Settle a batch of holds: the actual amount replaces the estimate (0 releases the hold).
-- Returns each hold's status after it (NULL: no such hold of that tenant). The join to
-- `holds` reads the rows as they were before the update: for those the update skipped
-- (recorded already), that is the answer. Not waiting for the WAL flush is safe here: a
-- settlement lost to a Postgres crash leaves the hold at its estimate until it expires (a
-- release that did not happen only refuses more), and the usage event records the cost.
CREATE OR REPLACE FUNCTION ledger.settle(
    p_ids text[], p_tenants text[], p_amounts bigint[], p_ttl_s double precision)
RETURNS TABLE (reservation_id text, status text, amount_pico bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH s AS (
        SELECT * FROM unnest(p_ids, p_tenants, p_amounts) AS s(id, tenant, amount)
    ), changed AS (
        UPDATE ledger.holds h
           SET amount_pico = s.amount,
               status = CASE WHEN s.amount = 0 THEN 'released' ELSE 'settled' END,
               closed_at = CASE WHEN s.amount = 0 THEN now() END,
               expires_at = now() + make_interval(secs => p_ttl_s)
          FROM s
         WHERE h.reservation_id = s.id AND h.tenant = s.tenant AND h.status <> 'recorded'
        RETURNING h.reservation_id AS id, h.status AS status, h.amount_pico AS amount
    )
    SELECT s.id, coalesce(c.status, h.status), coalesce(c.amount, h.amount_pico)
      FROM s
      LEFT JOIN changed c ON c.id = s.id
      LEFT JOIN ledger.holds h ON h.reservation_id = s.id AND h.tenant = s.tenant;
END
$$;

-- Record the thresholds that budgets of these tenants have crossed in their current
-- period and were not recorded yet; returns the new ones (to be published).
CREATE OR REPLACE FUNCTION ledger.check_alerts(p_tenants text[], p_thresholds integer[])
RETURNS SETOF ledger.alerts LANGUAGE sql AS $$
    INSERT INTO ledger.alerts (tenant, api_key_id, period, period_start, threshold,
                               spent_pico, limit_pico)
    SELECT b.tenant, b.api_key_id, b.period, ledger.period_start(b.period), t.pct, c.spent_pico,
           b.limit_pico
      FROM ledger.budgets b
     CROSS JOIN LATERAL ledger.committed(b.tenant, b.api_key_id, b.period) AS c
     CROSS JOIN unnest(p_thresholds) AS t(pct)
     WHERE b.tenant = ANY(p_tenants)
       AND c.spent_pico > 0 AND c.spent_pico * 100 >= b.limit_pico::numeric * t.pct
     ORDER BY b.tenant, b.api_key_id, t.pct
        ON CONFLICT DO NOTHING
    RETURNING *
$$;
