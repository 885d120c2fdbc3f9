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
];
