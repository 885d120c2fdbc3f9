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
];
