import type { Database } from "bun:sqlite";
import type { WriteStep, runWriteSteps } from "./_write-steps";

/** What the store's thread asks of the checkpoint worker; replies come back in the same order. */
export type CheckpointRequest =
  | { type: "open"; path: string; limits: CheckpointLimits; progress: SharedArrayBuffer }
  | { type: "tick" }
  /** `mark`: a query for one number, read before and after the steps (see WRITE_MARKS). */
  /** `steps`: WriteStep[] as JSON (cloned far faster than arrays of rows); `mark`: see WRITE_MARKS. */
  | { type: "write"; seq: number; steps: string; mark?: string }
  | { type: "stop" };

export interface CheckpointLimits {
  /** While writes go on, copying runs at most this often; when they pause, at the next look. */
  copyEveryMs: number;
  /** Writes have paused once nothing was committed for this long (0: at the first look that finds nothing new). */
  quietMs: number;
  /** A log that has grown past this under steady writes is started over (RESTART). */
  restartAboveBytes: number;
  /** A log file larger than this is truncated once writes pause. */
  truncateAboveBytes: number;
  /** How long a write (a flush) waits for another process's write lock before it gives up. */
  busyTimeoutMs: number;
}

/**
 * The progress buffer the store's thread shares with the worker: an Int32 at byte 0 holds the number of
 * the last write that committed or failed (slot WRITES_DONE, what Atomics.wait watches); three Float64s
 * from byte WRITE_MARKS hold the last committed write's number and its mark before and after its steps.
 */
export const WRITES_DONE = 0;
export const WRITE_MARKS = 8;
export const PROGRESS_BYTES = 32;

/** What one look at the write-ahead log did. */
export interface CheckpointReport {
  /**
   * `none`: nothing new since the last look; `passive`: frames copied without waiting for anyone;
   * `restart`: the log started over after a passive pass left it long; `truncate`: emptied in a pause.
   */
  mode: "none" | "passive" | "restart" | "truncate";
  /** Another connection held what the checkpoint needed, so it stopped short (it never waits). */
  busy: boolean;
  /** Frames in the write-ahead log, and how many of them are now in the database file. */
  walFrames: number;
  checkpointed: number;
}

/** A write's `mark`, read in its transaction before and after its steps. */
export interface WriteMarks {
  before: number;
  after: number;
}

export type CheckpointReply =
  | { type: "opened" }
  | { type: "tick"; report: CheckpointReport }
  | { type: "written"; seq: number; missing?: number[][]; marks?: WriteMarks; error?: string }
  | { type: "stopped" }
  | { type: "failed"; message: string };

interface WorkerScope {
  onmessage: ((event: MessageEvent<CheckpointRequest>) => void) | null;
  postMessage(reply: CheckpointReply): void;
}

/**
 * The body of the checkpoint worker. It runs from its own source text (see _checkpointer.ts), so it
 * must stay self-contained: it reads only its arguments and the worker's globals, gets bun:sqlite by a
 * name it is handed, which no bundler rewrites, and the hot path's flush writer as a function.
 *
 * Besides checkpoints it writes the hot path's flushes, on its own connection: their cost (rows spread
 * over a large pool's pages) then never holds up a request on the store's thread.
 */
export function checkpointWorker(sqliteModule: string, fsModule: string, runSteps: typeof runWriteSteps): void {
  const scope = globalThis as unknown as WorkerScope;
  let db: Database | undefined;
  let walPath = "";
  let limits: CheckpointLimits = {
    copyEveryMs: 0,
    quietMs: 0,
    restartAboveBytes: 0,
    truncateAboveBytes: 0,
    busyTimeoutMs: 0,
  };
  let lastChangeAt = Number.NEGATIVE_INFINITY;
  let progress: Int32Array | undefined;
  let marks: Float64Array | undefined;
  // This connection's own commits do not move its data_version: a flush written here says so itself.
  let wroteSinceLook = false;
  let walBytes: (path: string) => number = () => 0;
  let lastCopyAt = Number.NEGATIVE_INFINITY;
  let pageSize = 4096;
  // Whatever was committed before this connection opened is new to it: the first look checkpoints.
  let seenVersion = -1;
  // Unknown at start, so a large log left by an earlier run is truncated at the first quiet look.
  let committedSinceTruncate = true;
  let behind = false;
  let queue = Promise.resolve();

  const open = async (path: string, given: CheckpointLimits, shared: SharedArrayBuffer): Promise<void> => {
    progress = new Int32Array(shared, 0, 1);
    // Byte WRITE_MARKS, which this self-contained body cannot import.
    marks = new Float64Array(shared, 8, 3);
    const sqlite = (await import(sqliteModule)) as typeof import("bun:sqlite");
    const fs = (await import(fsModule)) as typeof import("node:fs");
    // stat, never open: closing any descriptor of the state file's -wal or -shm in this process would
    // drop every lock SQLite holds on it here (POSIX locks belong to the process), and with them the
    // guarantees other processes rely on.
    walBytes = (file) => fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    db = new sqlite.Database(path, { readwrite: true, create: false });
    // Every checkpoint here gives way at once rather than wait: the store's thread never waits on this one.
    db.exec("PRAGMA busy_timeout = 0");
    db.exec("PRAGMA wal_autocheckpoint = 0");
    // As on the store's own connection (openDatabase): this one writes every flush, and with SQLite's
    // default (FULL) each of those commits would sync the log, and its 2 MiB cache would read a large
    // pool's pages back from the file at every flush.
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA cache_size = -65536");
    walPath = `${path}-wal`;
    limits = given;
    pageSize = (db.query("PRAGMA page_size").get() as { page_size: number }).page_size;
  };

  const dataVersion = (conn: Database): number =>
    (conn.query("PRAGMA data_version").get() as { data_version: number }).data_version;

  const checkpoint = (conn: Database, mode: "passive" | "restart" | "truncate"): CheckpointReport => {
    const row = conn.query(`PRAGMA wal_checkpoint(${mode.toUpperCase()})`).get() as {
      busy: number;
      log: number;
      checkpointed: number;
    };
    behind = row.busy !== 0 || row.checkpointed < row.log;
    lastCopyAt = performance.now();
    return { mode, busy: row.busy !== 0, walFrames: row.log, checkpointed: row.checkpointed };
  };

  // A log is started over by the first write after a checkpoint has copied all of it. Under steady
  // writes a passive checkpoint never catches up (a commit always lands while it syncs), so once the
  // log is long a RESTART copies the little that is left while holding the write lock, then starts it
  // over. It gives up at once if a writer is there; a writer that comes during it waits that long.
  const passive = (conn: Database): CheckpointReport => {
    const report = checkpoint(conn, "passive");
    if (report.busy || report.walFrames * pageSize <= limits.restartAboveBytes) return report;
    // A second pass copies what came during the first, so the locked one has only a few frames left.
    if (checkpoint(conn, "passive").busy) return report;
    return checkpoint(conn, "restart");
  };

  // A checkpoint that catches up lets the next commit start the log over, and that commit then syncs the
  // new log's header: so while writes go on, copying runs at most every copyEveryMs; once they pause,
  // at the next look. data_version moves when any other connection, in this process or another, commits.
  // Writes pause when nothing was committed for quietMs: the hot path's flushes come a few times a
  // second, and a look between two of them is not a pause.
  const tick = (conn: Database): CheckpointReport => {
    const version = dataVersion(conn);
    const changed = version !== seenVersion || wroteSinceLook;
    seenVersion = version;
    wroteSinceLook = false;
    const now = performance.now();
    if (changed) {
      committedSinceTruncate = true;
      behind = true;
      lastChangeAt = now;
    }
    const quiet = !changed && now - lastChangeAt >= limits.quietMs;
    const due = behind && (quiet || now - lastCopyAt >= limits.copyEveryMs);
    if (due) return passive(conn);
    if (!quiet) return { mode: "none", busy: false, walFrames: 0, checkpointed: 0 };
    // Quiet now: give back the disk a burst made the log take. TRUNCATE holds the write lock only for
    // as long as the truncation, and gives up at once if a writer is there.
    if (committedSinceTruncate && walBytes(walPath) > limits.truncateAboveBytes) {
      const report = checkpoint(conn, "truncate");
      if (!report.busy) committedSinceTruncate = false;
      return report;
    }
    return { mode: "none", busy: false, walFrames: 0, checkpointed: 0 };
  };

  // Waits for another process's write lock as the store's own connection would; checkpoints never wait.
  const markOf = (conn: Database, sql: string): number =>
    Number(Object.values((conn.query(sql).get() as Record<string, unknown> | null) ?? {})[0] ?? 0);
  const write = (
    conn: Database,
    seq: number,
    steps: WriteStep[],
    mark: string | undefined,
  ): { missing: number[][]; marks: WriteMarks } => {
    conn.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(limits.busyTimeoutMs))}`);
    try {
      const [missing, before, after] = conn
        .transaction((): [number[][], number, number] => {
          const before = mark === undefined ? 0 : markOf(conn, mark);
          const missing = runSteps(conn, steps);
          return [missing, before, mark === undefined ? 0 : markOf(conn, mark)];
        })
        .immediate();
      wroteSinceLook = true;
      if (marks) {
        marks[0] = seq;
        marks[1] = before;
        marks[2] = after;
      }
      return { missing, marks: { before, after } };
    } finally {
      conn.exec("PRAGMA busy_timeout = 0");
    }
  };

  // The store's thread may be blocked waiting for exactly this (Checkpointer.settleWrites).
  const done = (seq: number): void => {
    if (!progress) return;
    // Slot WRITES_DONE, which this self-contained body cannot import.
    Atomics.store(progress, 0, seq);
    Atomics.notify(progress, 0);
  };

  const handle = async (request: CheckpointRequest): Promise<void> => {
    if (request.type === "open") {
      await open(request.path, request.limits, request.progress);
      scope.postMessage({ type: "opened" });
    } else if (request.type === "write") {
      // A write that fails (the file locked past the timeout) loses that flush, as it would on the
      // store's thread; the worker goes on.
      let reply: CheckpointReply;
      try {
        if (!db) throw new Error("the checkpoint worker was asked to write before it opened the state file");
        const steps = JSON.parse(request.steps) as WriteStep[];
        reply = { type: "written", seq: request.seq, ...write(db, request.seq, steps, request.mark) };
      } catch (error) {
        reply = { type: "written", seq: request.seq, error: error instanceof Error ? error.message : String(error) };
      }
      done(request.seq);
      scope.postMessage(reply);
    } else if (request.type === "tick") {
      if (!db) throw new Error("the checkpoint worker was asked to tick before it opened the state file");
      scope.postMessage({ type: "tick", report: tick(db) });
    } else {
      // Another connection (the store's) is still open, so closing this one runs no checkpoint of its own.
      db?.close();
      db = undefined;
      scope.postMessage({ type: "stopped" });
    }
  };

  scope.onmessage = (event) => {
    queue = queue
      .then(() => handle(event.data))
      .catch((error: unknown) =>
        scope.postMessage({ type: "failed", message: error instanceof Error ? error.message : String(error) }),
      );
  };
}
