import type { Database } from "bun:sqlite";

/** What the store's thread asks of the checkpoint worker; replies come back in the same order. */
export type CheckpointRequest =
  | { type: "open"; path: string; limits: CheckpointLimits }
  | { type: "tick" }
  | { type: "stop" };

export interface CheckpointLimits {
  /** Frames not yet copied into the database file are copied once they pass this (or when writes pause). */
  passiveAboveBytes: number;
  /** A log that has grown past this under steady writes is started over (RESTART). */
  restartAboveBytes: number;
  /** A log file larger than this is truncated once writes pause. */
  truncateAboveBytes: number;
}

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

export type CheckpointReply =
  | { type: "opened" }
  | { type: "tick"; report: CheckpointReport }
  | { type: "stopped" }
  | { type: "failed"; message: string };

interface WorkerScope {
  onmessage: ((event: MessageEvent<CheckpointRequest>) => void) | null;
  postMessage(reply: CheckpointReply): void;
}

/**
 * The body of the checkpoint worker. It runs from its own source text (see _checkpointer.ts), so it
 * must stay self-contained: it reads only its argument and the worker's globals, and gets bun:sqlite
 * by a name it is handed, which no bundler rewrites.
 */
export function checkpointWorker(sqliteModule: string): void {
  const scope = globalThis as unknown as WorkerScope;
  let db: Database | undefined;
  let walPath = "";
  let limits: CheckpointLimits = { passiveAboveBytes: 0, restartAboveBytes: 0, truncateAboveBytes: 0 };
  let shmPath = "";
  let pageSize = 4096;
  // Whatever was committed before this connection opened is new to it: the first look checkpoints.
  let seenVersion = -1;
  // Unknown at start, so a large log left by an earlier run is truncated at the first quiet look.
  let committedSinceTruncate = true;
  let behind = false;
  let queue = Promise.resolve();

  const open = async (path: string, given: CheckpointLimits): Promise<void> => {
    const sqlite = (await import(sqliteModule)) as typeof import("bun:sqlite");
    db = new sqlite.Database(path, { readwrite: true, create: false });
    // Every checkpoint here gives way at once rather than wait: the store's thread never waits on this one.
    db.exec("PRAGMA busy_timeout = 0");
    db.exec("PRAGMA wal_autocheckpoint = 0");
    walPath = `${path}-wal`;
    shmPath = `${path}-shm`;
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

  // Frames in the log not yet copied, from the wal-index header and checkpoint info at the start of the
  // -shm file (https://sqlite.org/walformat.html, native byte order); undefined if it cannot be read.
  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const uncopiedFrames = async (): Promise<number | undefined> => {
    try {
      const view = new DataView(await Bun.file(shmPath).slice(0, 100).arrayBuffer());
      if (view.byteLength < 100 || view.getUint32(0, littleEndian) !== 3007000 || view.getUint8(12) !== 1) return;
      return Math.max(0, view.getUint32(16, littleEndian) - view.getUint32(96, littleEndian));
    } catch {
      return undefined;
    }
  };

  // A checkpoint that catches up lets the next commit start the log over, and that commit then syncs the
  // new log's header: so copying waits until there is a fair amount to copy, or until writes pause.
  // data_version moves when any other connection, in this process or another, commits.
  const tick = async (conn: Database): Promise<CheckpointReport> => {
    const version = dataVersion(conn);
    const changed = version !== seenVersion;
    seenVersion = version;
    if (changed) committedSinceTruncate = true;
    const uncopied = await uncopiedFrames();
    const due =
      uncopied === undefined
        ? changed || behind
        : uncopied > 0 && (uncopied * pageSize >= limits.passiveAboveBytes || !changed);
    if (due) return passive(conn);
    if (changed) return { mode: "none", busy: false, walFrames: 0, checkpointed: 0 };
    // Quiet now: give back the disk a burst made the log take. TRUNCATE holds the write lock only for
    // as long as the truncation, and gives up at once if a writer is there.
    if (committedSinceTruncate && Bun.file(walPath).size > limits.truncateAboveBytes) {
      const report = checkpoint(conn, "truncate");
      if (!report.busy) committedSinceTruncate = false;
      return report;
    }
    return { mode: "none", busy: false, walFrames: 0, checkpointed: 0 };
  };

  const handle = async (request: CheckpointRequest): Promise<void> => {
    if (request.type === "open") {
      await open(request.path, request.limits);
      scope.postMessage({ type: "opened" });
    } else if (request.type === "tick") {
      if (!db) throw new Error("the checkpoint worker was asked to tick before it opened the state file");
      scope.postMessage({ type: "tick", report: await tick(db) });
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
