/**
 * PostgreSQL schema versions, applied in order; the version reached is kept in `keypool_meta`.
 * Never edit a released step: add a new one. Tables carry a `keypool_` prefix because the database is
 * usually shared with other applications.
 *
 * Times are epoch milliseconds and counters plain numbers, both as double precision: Bun returns
 * int8 as a string, and a double holds every integer up to 2^53 exactly.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE keypool_keys (
    pool            text    NOT NULL,
    id              text    NOT NULL,
    token           text    NOT NULL,
    weight          float8  NOT NULL DEFAULT 1,
    health          text    NOT NULL DEFAULT 'unknown',
    reason          text,
    ready_at        float8  NOT NULL DEFAULT 0,
    -- true while health is unknown or live (or a timed quarantine): the pick index is partial on it
    takeable        boolean NOT NULL DEFAULT true,
    rank            float8  NOT NULL DEFAULT 0,
    max_concurrency integer,
    in_flight       integer NOT NULL DEFAULT 0,
    last_used       float8,
    last_check      float8,
    requests        float8  NOT NULL DEFAULT 0,
    errors          float8  NOT NULL DEFAULT 0,
    last_check_ok         boolean,
    last_check_status     integer,
    last_check_latency_ms integer,
    last_check_reason     text,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    -- What the tokens file said, so a sync can tell "the file changed" from "we refreshed the token".
    source_token          text,
    source_refresh_token  text,
    refresh_token         text,
    expires_at            float8,
    next_check_at         float8  NOT NULL DEFAULT 0,
    refresh_owner         text,
    refresh_lock_until    float8  NOT NULL DEFAULT 0,
    key_group             text,
    fail_class            text,
    rung                  integer NOT NULL DEFAULT 0,
    fail_until            float8  NOT NULL DEFAULT 0,
    remaining_requests    float8,
    remaining_tokens      float8,
    remaining_reset_at    float8,
    minute_start          float8  NOT NULL DEFAULT 0,
    minute_requests       float8  NOT NULL DEFAULT 0,
    minute_tokens         float8  NOT NULL DEFAULT 0,
    day_start             float8  NOT NULL DEFAULT 0,
    day_requests          float8  NOT NULL DEFAULT 0,
    origin                text    NOT NULL DEFAULT 'file',
    limit_max_concurrency integer,
    limit_rpm             integer,
    limit_tpm             integer,
    limit_daily_requests  integer,
    PRIMARY KEY (pool, id)
  );
  -- The take walks this index in rank order and stops at the first ready key it can lock.
  CREATE INDEX keypool_keys_pick ON keypool_keys (pool, rank) WHERE takeable;
  CREATE INDEX keypool_keys_due ON keypool_keys (pool, next_check_at);
  CREATE INDEX keypool_keys_group ON keypool_keys (pool, key_group) WHERE key_group IS NOT NULL;

  CREATE TABLE keypool_leases (
    lease      text   PRIMARY KEY,
    pool       text   NOT NULL,
    key_id     text   NOT NULL,
    taken_at   float8 NOT NULL,
    expires_at float8 NOT NULL
  );
  CREATE INDEX keypool_leases_expiry ON keypool_leases (expires_at);
  CREATE INDEX keypool_leases_key ON keypool_leases (pool, key_id, taken_at);

  CREATE TABLE keypool_events (
    seq        bigserial PRIMARY KEY,
    at         float8 NOT NULL,
    pool       text   NOT NULL,
    key_id     text   NOT NULL,
    from_state text   NOT NULL,
    to_state   text   NOT NULL,
    class      text,
    reason     text,
    until      float8
  );

  -- One row per key and hour (epoch ms of the hour's start); hour 0 holds what was folded out of
  -- buckets past retention, so lifetime totals survive pruning.
  CREATE TABLE keypool_usage_hourly (
    pool            text   NOT NULL,
    key_id          text   NOT NULL,
    hour            float8 NOT NULL,
    requests        float8 NOT NULL DEFAULT 0,
    successes       float8 NOT NULL DEFAULT 0,
    fail_rate_limit float8 NOT NULL DEFAULT 0,
    fail_quota      float8 NOT NULL DEFAULT 0,
    fail_auth       float8 NOT NULL DEFAULT 0,
    fail_overloaded float8 NOT NULL DEFAULT 0,
    fail_timeout    float8 NOT NULL DEFAULT 0,
    fail_network    float8 NOT NULL DEFAULT 0,
    fail_client     float8 NOT NULL DEFAULT 0,
    fail_other      float8 NOT NULL DEFAULT 0,
    input_tokens    float8 NOT NULL DEFAULT 0,
    output_tokens   float8 NOT NULL DEFAULT 0,
    cached_tokens   float8 NOT NULL DEFAULT 0,
    cost_micros     float8 NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, key_id, hour)
  );
  CREATE INDEX keypool_usage_hourly_hour ON keypool_usage_hourly (hour);

  CREATE TABLE keypool_sessions (
    pool       text   NOT NULL,
    session    text   NOT NULL,
    key_id     text   NOT NULL,
    detour_id  text,
    expires_at float8 NOT NULL,
    PRIMARY KEY (pool, session)
  );
  CREATE INDEX keypool_sessions_expiry ON keypool_sessions (pool, expires_at);
  CREATE INDEX keypool_sessions_key ON keypool_sessions (pool, key_id);
  `,
  // 2: prompt-cache accounting — tokens written to the cache per key, and each session's token totals
  // (SQLite step 7).
  `
  ALTER TABLE keypool_usage_hourly ADD COLUMN cache_write_tokens float8 NOT NULL DEFAULT 0;
  ALTER TABLE keypool_sessions
    ADD COLUMN requests           float8 NOT NULL DEFAULT 0,
    ADD COLUMN input_tokens       float8 NOT NULL DEFAULT 0,
    ADD COLUMN output_tokens      float8 NOT NULL DEFAULT 0,
    ADD COLUMN cached_tokens      float8 NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens float8 NOT NULL DEFAULT 0;
  `,
  // 3: the take's order is rank, then id byte by byte (chooseKey's tie rule): the index walks it as is.
  `
  CREATE INDEX keypool_keys_choice ON keypool_keys (pool, rank, id COLLATE "C") WHERE takeable;
  DROP INDEX keypool_keys_pick;
  `,
  // 4: model-aware keys (SQLite step 10) — a (key, model) pair's rest, access, ladder and minute window
  // (PairColumns in ../model-columns.ts), deleted with its key; the models a key is restricted to
  // (\`a|b\`, null: any); the model a lease was taken for, which its release applies to when the release
  // names none; the model an event is about (null: the key's own transition).
  `
  CREATE TABLE keypool_key_models (
    pool            text    NOT NULL,
    key_id          text    NOT NULL,
    model           text    NOT NULL,
    ready_at        float8  NOT NULL DEFAULT 0,
    reason          text,
    access          text    NOT NULL DEFAULT 'ok',
    fail_class      text,
    rung            integer NOT NULL DEFAULT 0,
    fail_until      float8  NOT NULL DEFAULT 0,
    minute_start    float8  NOT NULL DEFAULT 0,
    minute_requests float8  NOT NULL DEFAULT 0,
    minute_tokens   float8  NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, key_id, model),
    FOREIGN KEY (pool, key_id) REFERENCES keypool_keys (pool, id) ON DELETE CASCADE
  );
  ALTER TABLE keypool_keys ADD COLUMN models text;
  ALTER TABLE keypool_leases ADD COLUMN model text;
  ALTER TABLE keypool_events ADD COLUMN model text;
  `,
  // 5: spend caps (SQLite step 11) — a key's own caps in micro-USD (null: none); what capped keys and
  // pools spent in the current UTC day and month (SpendColumns in ../key-columns.ts; key_id '' is the
  // pool's total, so no foreign key: a key's row is deleted with the key by the store); which alert an
  // event raises.
  `
  ALTER TABLE keypool_keys ADD COLUMN budget_day_micros float8, ADD COLUMN budget_month_micros float8;
  ALTER TABLE keypool_events ADD COLUMN alert text;
  CREATE TABLE keypool_spend (
    pool           text   NOT NULL,
    key_id         text   NOT NULL,
    day_start      float8 NOT NULL DEFAULT 0,
    day_micros     float8 NOT NULL DEFAULT 0,
    day_unpriced   float8 NOT NULL DEFAULT 0,
    month_start    float8 NOT NULL DEFAULT 0,
    month_micros   float8 NOT NULL DEFAULT 0,
    month_unpriced float8 NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, key_id)
  );
  `,
  // 6: the key log behind each instance's in-memory copy (see _hot-path.ts; SQLite step 9). Every
  // transaction that changes what a take decides on — a key's state, rest, ladder, limits, weight,
  // token, group, caps, or the key itself appearing or going — bumps the one version row and logs the
  // keys it changed under the new version. The bump runs at commit (a deferred trigger), so it is the
  // last lock a writer takes: versions are in commit order, and nothing waits on a writer that holds it.
  // Counters, ranks, budgets and windows are not logged: each instance keeps its own and flushes them.
  `
  CREATE TABLE keypool_version (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    v   bigint  NOT NULL
  );
  INSERT INTO keypool_version (one, v) VALUES (true, 0);
  CREATE TABLE keypool_key_log (
    v    bigint NOT NULL,
    pool text   NOT NULL,
    id   text   NOT NULL,
    PRIMARY KEY (v, pool, id)
  );
  CREATE FUNCTION keypool_log_key() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    version bigint := nullif(current_setting('keypool.logged_version', true), '')::bigint;
  BEGIN
    -- One version per transaction: the first of its logged rows bumps it, the others reuse it.
    IF version IS NULL THEN
      UPDATE keypool_version SET v = v + 1 RETURNING v INTO version;
      PERFORM set_config('keypool.logged_version', version::text, true);
      -- The log keeps its last 10,000 versions: a copy further behind reads its pools whole. Pruned here,
      -- every 1,000th version, so it stays short whichever path writes (a pool of cooldown takes logs each).
      IF version % 1000 = 0 THEN
        DELETE FROM keypool_key_log WHERE v <= version - 10000;
      END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
      INSERT INTO keypool_key_log (v, pool, id) VALUES (version, OLD.pool, OLD.id) ON CONFLICT DO NOTHING;
    ELSE
      INSERT INTO keypool_key_log (v, pool, id) VALUES (version, NEW.pool, NEW.id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
  END $$;
  CREATE CONSTRAINT TRIGGER keypool_keys_logged_change AFTER INSERT OR DELETE ON keypool_keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION keypool_log_key();
  CREATE CONSTRAINT TRIGGER keypool_keys_logged_update AFTER UPDATE ON keypool_keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN ((OLD.health, OLD.reason, OLD.ready_at, OLD.takeable, OLD.weight, OLD.max_concurrency, OLD.token,
           OLD.key_group, OLD.fail_class, OLD.rung, OLD.fail_until, OLD.origin, OLD.limit_max_concurrency,
           OLD.limit_rpm, OLD.limit_tpm, OLD.limit_daily_requests, OLD.models, OLD.budget_day_micros,
           OLD.budget_month_micros)
          IS DISTINCT FROM
          (NEW.health, NEW.reason, NEW.ready_at, NEW.takeable, NEW.weight, NEW.max_concurrency, NEW.token,
           NEW.key_group, NEW.fail_class, NEW.rung, NEW.fail_until, NEW.origin, NEW.limit_max_concurrency,
           NEW.limit_rpm, NEW.limit_tpm, NEW.limit_daily_requests, NEW.models, NEW.budget_day_micros,
           NEW.budget_month_micros))
    EXECUTE FUNCTION keypool_log_key();
  -- An instance's look at the log (see _hot-path.ts): the version, and when it moved past \`since\`, the
  -- oldest entry kept and the rows (null: gone) of the keys of \`pools\` logged since. STABLE: every
  -- statement in it reads the calling statement's snapshot, so the version and the rows agree; a
  -- function, so its plans are kept between calls (planning the query each time cost more than running it).
  CREATE FUNCTION keypool_look(since bigint, pools text[])
    RETURNS TABLE (log_version float8, log_first float8, changed json) LANGUAGE plpgsql STABLE AS $$
  DECLARE
    current bigint;
  BEGIN
    SELECT v INTO current FROM keypool_version;
    IF current <= since THEN
      RETURN QUERY SELECT current::float8, NULL::float8, NULL::json;
      RETURN;
    END IF;
    RETURN QUERY SELECT current::float8, (SELECT min(v) FROM keypool_key_log)::float8,
      (SELECT json_agg(json_build_object('pool', c.pool, 'id', c.id, 'row', to_json(k)))
       FROM (SELECT DISTINCT l.pool, l.id FROM keypool_key_log l
             WHERE l.v > since AND l.v <= current AND l.pool = ANY(pools)) c
       LEFT JOIN keypool_keys k ON k.pool = c.pool AND k.id = c.id);
  END $$;
  `,
];
