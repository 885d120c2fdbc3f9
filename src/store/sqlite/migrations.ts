/**
 * Schema versions, applied in order and recorded in `PRAGMA user_version`.
 * Never edit a released step: add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE keys (
    pool            TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    token           TEXT    NOT NULL,
    weight          REAL    NOT NULL DEFAULT 1,
    health          TEXT    NOT NULL DEFAULT 'unknown',
    reason          TEXT,
    ready_at        INTEGER NOT NULL DEFAULT 0,
    -- 1 while health is unknown or live; kept as a column so the pick index can lead with it
    takeable        INTEGER NOT NULL DEFAULT 1,
    rank            REAL    NOT NULL DEFAULT 0,
    max_concurrency INTEGER,
    in_flight       INTEGER NOT NULL DEFAULT 0,
    last_used       INTEGER,
    last_check      INTEGER,
    requests        INTEGER NOT NULL DEFAULT 0,
    errors          INTEGER NOT NULL DEFAULT 0,
    last_check_ok         INTEGER,
    last_check_status     INTEGER,
    last_check_latency_ms INTEGER,
    last_check_reason     TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, id)
  ) WITHOUT ROWID;
  -- The take walks this index in rank order and stops at the first ready key.
  CREATE INDEX keys_pick ON keys (pool, takeable, rank);

  CREATE TABLE leases (
    lease      TEXT    PRIMARY KEY,
    pool       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    taken_at   INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX leases_expiry ON leases (expires_at);
  CREATE INDEX leases_key ON leases (pool, key_id, taken_at);

  `,
  // 2: health checking and token refresh.
  `
  -- What the tokens file said, so a sync can tell "the file changed" from "we refreshed the token".
  ALTER TABLE keys ADD COLUMN source_token TEXT;
  ALTER TABLE keys ADD COLUMN source_refresh_token TEXT;
  ALTER TABLE keys ADD COLUMN refresh_token TEXT;
  ALTER TABLE keys ADD COLUMN expires_at INTEGER;
  -- 0: due as soon as a checker runs.
  ALTER TABLE keys ADD COLUMN next_check_at INTEGER NOT NULL DEFAULT 0;
  -- The refresh lock: who holds it and until when; a lapsed lock is free.
  ALTER TABLE keys ADD COLUMN refresh_owner TEXT;
  ALTER TABLE keys ADD COLUMN refresh_lock_until INTEGER NOT NULL DEFAULT 0;
  UPDATE keys SET source_token = token;
  CREATE INDEX keys_due ON keys (pool, next_check_at);
  `,
  // 3: facts about the file itself, e.g. the check value that tells a wrong master key from the right one.
  `
  CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  `,
  // 4: failure policy — ladders, quota groups, the upstream's rate-limit budget, per-key limit windows, events.
  `
  -- "group" is an SQL keyword.
  ALTER TABLE keys ADD COLUMN key_group TEXT;
  -- The backoff ladder: the last failure's class, failures of it in a row, and when the current rung's rest ends.
  ALTER TABLE keys ADD COLUMN fail_class TEXT;
  ALTER TABLE keys ADD COLUMN rung INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE keys ADD COLUMN fail_until INTEGER NOT NULL DEFAULT 0;
  -- What the upstream's rate-limit headers last said is left; NULL when it never said.
  ALTER TABLE keys ADD COLUMN remaining_requests INTEGER;
  ALTER TABLE keys ADD COLUMN remaining_tokens INTEGER;
  ALTER TABLE keys ADD COLUMN remaining_reset_at INTEGER;
  -- rpm / tpm / daily_requests windows: when each opened and what it has counted.
  ALTER TABLE keys ADD COLUMN minute_start INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE keys ADD COLUMN minute_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE keys ADD COLUMN minute_tokens INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE keys ADD COLUMN day_start INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE keys ADD COLUMN day_requests INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX keys_group ON keys (pool, key_group) WHERE key_group IS NOT NULL;

  -- Recent state transitions, newest last; pruned to a fixed number of rows as new ones arrive.
  CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    pool       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    class      TEXT,
    reason     TEXT,
    until      INTEGER
  );
  `,
  // 5: key administration (where a key came from, its own limits) and the usage ledger.
  `
  -- file | env: the config defines the key and a sync may remove it; api: only the admin API does.
  ALTER TABLE keys ADD COLUMN origin TEXT NOT NULL DEFAULT 'file';
  -- The key's own limits, which win over its pool's; NULL means the pool's.
  ALTER TABLE keys ADD COLUMN limit_max_concurrency INTEGER;
  ALTER TABLE keys ADD COLUMN limit_rpm INTEGER;
  ALTER TABLE keys ADD COLUMN limit_tpm INTEGER;
  ALTER TABLE keys ADD COLUMN limit_daily_requests INTEGER;

  -- One row per key and hour (epoch ms of the hour's start); hour 0 holds what was folded out of
  -- buckets past retention, so lifetime totals survive pruning.
  CREATE TABLE usage_hourly (
    pool            TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    hour            INTEGER NOT NULL,
    requests        INTEGER NOT NULL DEFAULT 0,
    successes       INTEGER NOT NULL DEFAULT 0,
    fail_rate_limit INTEGER NOT NULL DEFAULT 0,
    fail_quota      INTEGER NOT NULL DEFAULT 0,
    fail_auth       INTEGER NOT NULL DEFAULT 0,
    fail_overloaded INTEGER NOT NULL DEFAULT 0,
    fail_timeout    INTEGER NOT NULL DEFAULT 0,
    fail_network    INTEGER NOT NULL DEFAULT 0,
    fail_client     INTEGER NOT NULL DEFAULT 0,
    fail_other      INTEGER NOT NULL DEFAULT 0,
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    cached_tokens   INTEGER NOT NULL DEFAULT 0,
    -- Micro-dollars, fractional: a few tokens of a cheap model cost less than one.
    cost_micros     REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, key_id, hour)
  ) WITHOUT ROWID;
  CREATE INDEX usage_hourly_hour ON usage_hourly (hour);
  `,
  // 6: sticky sessions — the key each session uses, shared by every process on the file.
  `
  CREATE TABLE sessions (
    pool       TEXT    NOT NULL,
    session    TEXT    NOT NULL,
    -- The session's own key, and the key it uses while its own is unavailable (NULL: on its own).
    key_id     TEXT    NOT NULL,
    detour_id  TEXT,
    -- session.ttl_sec after the session last used its own key.
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (pool, session)
  ) WITHOUT ROWID;
  CREATE INDEX sessions_expiry ON sessions (pool, expires_at);
  CREATE INDEX sessions_key ON sessions (pool, key_id);

  -- Sessions per pool, kept by triggers so holding the table to session.max never counts it.
  CREATE TABLE session_counts (
    pool TEXT    PRIMARY KEY,
    n    INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TRIGGER sessions_added AFTER INSERT ON sessions BEGIN
    INSERT OR IGNORE INTO session_counts (pool, n) VALUES (NEW.pool, 0);
    UPDATE session_counts SET n = n + 1 WHERE pool = NEW.pool;
  END;
  CREATE TRIGGER sessions_removed AFTER DELETE ON sessions BEGIN
    UPDATE session_counts SET n = n - 1 WHERE pool = OLD.pool;
  END;
  `,
  // 7: prompt-cache accounting — tokens written to the cache per key, and each session's token totals.
  `
  ALTER TABLE usage_hourly ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
  -- What the session's requests used while its mapping lived: its prompt-cache hit ratio.
  ALTER TABLE sessions ADD COLUMN requests           INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sessions ADD COLUMN input_tokens       INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sessions ADD COLUMN output_tokens      INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sessions ADD COLUMN cached_tokens      INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sessions ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
  `,
  // 8: every take inserts a lease and every release deletes one; this index made each of them touch
  // one more B-tree (measured: take+release 20% less CPU without it). What used it — a release by key
  // id instead of lease id, removing a key — now scans the open leases, which number the requests in flight.
  `
  DROP INDEX leases_key;
  `,
  // 9: the in-memory hot path (see _hot-path.ts) keeps each process's copy of the keys current by
  // reading back only the keys changed since it last looked: every insert, removal or decisive update of a key
  // appends its name to this log (an append costs ~2 µs; a per-row change number kept by triggers cost
  // ~40 µs a write). The log is pruned from the front; a copy that fell behind the front reads everything.
  `
  CREATE TABLE key_log (
    seq  INTEGER PRIMARY KEY,
    pool TEXT NOT NULL,
    id   TEXT NOT NULL
  );
  CREATE TRIGGER keys_logged_insert AFTER INSERT ON keys BEGIN
    INSERT INTO key_log (pool, id) VALUES (NEW.pool, NEW.id);
  END;
  -- Only what decides a take: counters, the rank, the upstream's budget and the limit windows a flush
  -- writes are not logged (each process keeps its own copy of those; the rotation between processes is
  -- approximate, and limited keys are decided on the file's row, never on a copy).
  CREATE TRIGGER keys_logged_update AFTER UPDATE OF health, reason, ready_at, takeable, weight, max_concurrency,
    token, key_group, fail_class, rung, fail_until, origin, limit_max_concurrency, limit_rpm, limit_tpm,
    limit_daily_requests ON keys BEGIN
    INSERT INTO key_log (pool, id) VALUES (NEW.pool, NEW.id);
  END;
  CREATE TRIGGER keys_logged_delete AFTER DELETE ON keys BEGIN
    INSERT INTO key_log (pool, id) VALUES (OLD.pool, OLD.id);
  END;
  `,
  // 10: model-aware keys (issue 18). A key's state per model lives in its own rows, kept only while they
  // say something (a rest, a denial, a ladder, a model_limits window); the keys' `models` holds the
  // tokens file's models= list; a lease remembers the model it was taken for, an event the model it is about.
  `
  ALTER TABLE keys ADD COLUMN models TEXT;
  ALTER TABLE leases ADD COLUMN model TEXT;
  ALTER TABLE events ADD COLUMN model TEXT;
  CREATE TABLE key_models (
    pool            TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    model           TEXT    NOT NULL,
    ready_at        INTEGER NOT NULL DEFAULT 0,
    reason          TEXT,
    access          TEXT    NOT NULL DEFAULT 'ok',
    fail_class      TEXT,
    rung            INTEGER NOT NULL DEFAULT 0,
    fail_until      INTEGER NOT NULL DEFAULT 0,
    minute_start    INTEGER NOT NULL DEFAULT 0,
    minute_requests INTEGER NOT NULL DEFAULT 0,
    minute_tokens   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, key_id, model)
  ) WITHOUT ROWID;
  CREATE INDEX key_models_resting ON key_models (pool, model, ready_at);
  CREATE TRIGGER keys_drop_models AFTER DELETE ON keys BEGIN
    DELETE FROM key_models WHERE pool = OLD.pool AND key_id = OLD.id;
  END;
  -- A pair decides takes as the key's own columns do: every change of one is logged under its key,
  -- so each process's copy reads the key (and its pairs) back. A models= change is logged too.
  CREATE TRIGGER key_models_logged_insert AFTER INSERT ON key_models BEGIN
    INSERT INTO key_log (pool, id) VALUES (NEW.pool, NEW.key_id);
  END;
  CREATE TRIGGER key_models_logged_update AFTER UPDATE ON key_models BEGIN
    INSERT INTO key_log (pool, id) VALUES (NEW.pool, NEW.key_id);
  END;
  CREATE TRIGGER key_models_logged_delete AFTER DELETE ON key_models BEGIN
    INSERT INTO key_log (pool, id) VALUES (OLD.pool, OLD.key_id);
  END;
  CREATE TRIGGER keys_logged_models AFTER UPDATE OF models ON keys BEGIN
    INSERT INTO key_log (pool, id) VALUES (NEW.pool, NEW.id);
  END;
  `,
  // 11: spend caps (issue 20). A key's own caps; what keys and pools spent in the current UTC day and
  // month (key_id '' is the pool's total), kept for capped keys and pools; and which alert an event raises.
  `
  ALTER TABLE keys ADD COLUMN budget_day_micros INTEGER;
  ALTER TABLE keys ADD COLUMN budget_month_micros INTEGER;
  ALTER TABLE events ADD COLUMN alert TEXT;
  CREATE TABLE spend (
    pool           TEXT    NOT NULL,
    key_id         TEXT    NOT NULL,
    day_start      INTEGER NOT NULL DEFAULT 0,
    -- Micro-dollars, fractional like the ledger's.
    day_micros     REAL    NOT NULL DEFAULT 0,
    day_unpriced   INTEGER NOT NULL DEFAULT 0,
    month_start    INTEGER NOT NULL DEFAULT 0,
    month_micros   REAL    NOT NULL DEFAULT 0,
    month_unpriced INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, key_id)
  ) WITHOUT ROWID;
  -- A key's budget decides its takes (through its rest): a change is logged like its limits.
  CREATE TRIGGER keys_logged_budget AFTER UPDATE OF budget_day_micros, budget_month_micros ON keys BEGIN
    INSERT INTO key_log (pool, id) VALUES (NEW.pool, NEW.id);
  END;
  CREATE TRIGGER keys_drop_spend AFTER DELETE ON keys BEGIN
    DELETE FROM spend WHERE pool = OLD.pool AND key_id = OLD.id;
  END;
  `,
];
