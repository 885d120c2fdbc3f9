import type { Database } from "bun:sqlite";
import {
  type CheckpointReply,
  type CheckpointReport,
  type CheckpointRequest,
  type WriteMarks,
  PROGRESS_BYTES,
  WRITES_DONE,
  WRITE_MARKS,
  checkpointWorker,
} from "./_checkpoint-worker";
import { StateFileIdentity } from "./_state-file-identity";
import { type WriteStep, runWriteSteps } from "./_write-steps";

export type { CheckpointReport } from "./_checkpoint-worker";

export interface CheckpointerOptions {
  /** How often the worker looks for new commits; 0 leaves it to whoever calls `tick()` (tests, benchmarks). */
  everyMs?: number;
  /** While writes go on, frames are copied into the database file at most this often; when they pause, at once. */
  copyEveryMs?: number;
  /** Writes have paused once nothing was committed for this long; 0: at the first look that finds nothing new. */
  quietMs?: number;
  /** A log longer than this is started over even while writes go on (each time, a writer may wait one sync). */
  restartAboveBytes?: number;
  /** A write-ahead log file larger than this is truncated once writes pause. */
  truncateAboveBytes?: number;
}

const DEFAULT_EVERY_MS = 100;
// Each start-over costs the next commit one sync (SQLite syncs a new log's header), and may make a commit
// wait while the last frames are copied: rare at this size. The passive checkpoints keep readers from
// searching more than the log's uncopied tail, so a long log does not slow them.
const DEFAULT_RESTART_ABOVE_BYTES = 64 * 1024 * 1024;
const DEFAULT_TRUNCATE_ABOVE_BYTES = 1024 * 1024;
// A copy that catches up costs the next commit a sync of the new log's header: at most about once a second.
const DEFAULT_COPY_EVERY_MS = 1000;
// Several flush intervals (_hot-path.ts FLUSH_EVERY_MS): steady traffic never looks like a pause.
const DEFAULT_QUIET_MS = 1000;
// SQLite's default, for when the worker cannot do the job and the store's own commits must again.
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;

// Built from the function's own text so that one source serves `bun src/main.ts`, the compiled
// executable and an application that bundles the library: a worker entry file would need its path
// worked out differently in each.
const WORKER_SOURCE = `(${checkpointWorker.toString()})("bun:sqlite", "node:fs", ${runWriteSteps.toString()});`;
// One URL for the process, never revoked: a worker loads its script after `new Worker` returns.
let workerUrl: string | undefined;

interface Pending {
  resolve: (reply: CheckpointReply) => void;
  reject: (error: Error) => void;
}

/** A write handed to the worker may wait this much longer than its busy timeout before it is given up. */
const WRITE_GRACE_MS = 5_000;

/**
 * Runs the state file's checkpoints (copying the write-ahead log into the database file, and its
 * fsync) on a Worker with its own connection, so no commit on the store's thread ever pays for one.
 * The store's connection has automatic checkpoints turned off; the final one on close stays the store's.
 * The worker also writes the hot path's timed flushes (`write`), which the store's thread never waits
 * for unless it is about to decide on the file (`settleWrites`).
 */
export class Checkpointer {
  private worker: Worker | undefined;
  private readonly pending: Pending[] = [];
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private ticking = false;
  private stopped = false;
  private readonly identity: StateFileIdentity;
  /** Shared with the worker: the number of the last write it finished (committed or failed). */
  private readonly shared = new SharedArrayBuffer(PROGRESS_BYTES);
  private readonly progress = new Int32Array(this.shared, 0, 1);
  private readonly marks = new Float64Array(this.shared, WRITE_MARKS, 3);
  /** Writes handed to the worker so far. */
  private posted = 0;
  /** Why the worker gave up, once it has: the store's own commits checkpoint again from then on. */
  failure: string | undefined;

  constructor(
    private readonly db: Database,
    private readonly path: string,
    private readonly options: CheckpointerOptions = {},
    /** The store's busy timeout, which the worker's writes keep. */
    private readonly busyTimeoutMs = 5_000,
  ) {
    this.identity = new StateFileIdentity(path);
    db.exec("PRAGMA wal_autocheckpoint = 0");
    const everyMs = options.everyMs ?? DEFAULT_EVERY_MS;
    if (everyMs > 0) {
      this.timer = setInterval(() => this.tickInBackground(), everyMs);
      this.timer.unref();
    }
  }

  /** One look at the log: a passive checkpoint if frames wait to be copied and writes paused or copyEveryMs passed. */
  async tick(): Promise<CheckpointReport> {
    if (this.stopped) throw new Error("the checkpointer has stopped");
    // A file that is no longer at its path may share a -wal with a newcomer there: copying frames into
    // the file only this process still sees would lose them for everyone else.
    const problem = this.identity.problem();
    if (problem) {
      await this.stop();
      throw new Error(`no checkpoint into a lost state file: ${problem}`);
    }
    const reply = await this.ask({ type: "tick" });
    if (reply.type !== "tick") throw new Error(`the checkpoint worker answered ${reply.type} to a tick`);
    return reply.report;
  }

  /**
   * Writes `steps` in one transaction on the worker's connection, after everything asked before. Resolves
   * with what runWriteSteps found and the `mark` read before and after the steps; rejects if the write
   * failed (its counts are then lost, as on kill -9).
   */
  write(steps: WriteStep[], mark?: string): Promise<{ missing: number[][]; marks: WriteMarks }> {
    // Handed over before anything is awaited: an async function's parameters stay reachable until it
    // returns, and a large pool's steps hold an array per key used — kept for as long as the worker
    // takes (queued behind earlier flushes, after a burst, for seconds), they filled the old generation.
    const seq = ++this.posted;
    return this.written(this.ask({ type: "write", seq, steps: JSON.stringify(steps), mark }));
  }

  private async written(asked: Promise<CheckpointReply>): Promise<{ missing: number[][]; marks: WriteMarks }> {
    const reply = await asked;
    if (reply.type !== "written") throw new Error(`the checkpoint worker answered ${reply.type} to a write`);
    if (reply.error !== undefined) throw new Error(reply.error);
    return { missing: reply.missing ?? [], marks: reply.marks ?? { before: 0, after: 0 } };
  }

  /**
   * The `mark` of the last write that committed, read inside its transaction before and after its steps
   * (so whatever numbered rows it appended lie between); undefined before any. Valid once settled.
   */
  get lastWriteMarks(): WriteMarks | undefined {
    if (this.marks[0] === 0) return undefined;
    return { before: this.marks[1]!, after: this.marks[2]! };
  }

  /** Whether a write handed to the worker may not have finished yet. */
  get writesInFlight(): boolean {
    return this.failure === undefined && Atomics.load(this.progress, WRITES_DONE) < this.posted;
  }

  /**
   * Blocks this thread until every write handed to the worker has committed or failed, so what the store
   * reads or decides next sees it. Never called inside a transaction of the store's connection: the
   * worker may be waiting for that transaction's lock.
   */
  settleWrites(): void {
    if (!this.writesInFlight) return;
    // By construction this never happens; if it did, waiting would only end at the worker's busy timeout.
    if (this.db.inTransaction) return;
    const deadline = performance.now() + this.busyTimeoutMs + WRITE_GRACE_MS;
    for (;;) {
      const done = Atomics.load(this.progress, WRITES_DONE);
      if (done >= this.posted) return;
      const left = deadline - performance.now();
      if (left <= 0) {
        this.fail("the checkpoint worker did not finish a write in time");
        return;
      }
      Atomics.wait(this.progress, WRITES_DONE, done, left);
    }
  }

  /** Stops the worker and waits for it to close its connection; the store closes its own afterwards. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const worker = this.worker;
    if (!worker) return;
    try {
      await this.ask({ type: "stop" }, true);
    } catch {
      // It failed already; terminating is all that is left.
    } finally {
      worker.terminate();
      this.worker = undefined;
    }
  }

  private tickInBackground(): void {
    if (this.ticking || this.stopped || this.failure) return;
    this.ticking = true;
    this.tick()
      .catch(() => {
        // A failure is recorded by fail(); a lost file has stopped the checkpointer.
      })
      .finally(() => {
        this.ticking = false;
      });
  }

  private ask(request: CheckpointRequest, evenIfStopped = false): Promise<CheckpointReply> {
    if (this.failure) return Promise.reject(new Error(this.failure));
    if (this.stopped && !evenIfStopped) return Promise.reject(new Error("the checkpointer has stopped"));
    const worker = this.worker ?? this.startWorker();
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      worker.postMessage(request);
    });
  }

  // Started on the first look rather than at open: a store that lives a moment (a CLI command, a
  // test) never pays for a thread.
  private startWorker(): Worker {
    workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
    const worker = new Worker(workerUrl);
    worker.unref();
    worker.onmessage = (event: MessageEvent<CheckpointReply>) => this.onReply(event.data);
    worker.onerror = (event) => this.fail(`the checkpoint worker crashed: ${event.message}`);
    this.worker = worker;
    const opening = new Promise<CheckpointReply>((resolve, reject) => this.pending.push({ resolve, reject }));
    opening.catch(() => {});
    worker.postMessage({
      type: "open",
      path: this.path,
      limits: {
        copyEveryMs: this.options.copyEveryMs ?? DEFAULT_COPY_EVERY_MS,
        quietMs: this.options.quietMs ?? DEFAULT_QUIET_MS,
        restartAboveBytes: this.options.restartAboveBytes ?? DEFAULT_RESTART_ABOVE_BYTES,
        truncateAboveBytes: this.options.truncateAboveBytes ?? DEFAULT_TRUNCATE_ABOVE_BYTES,
        busyTimeoutMs: this.busyTimeoutMs,
      },
      progress: this.shared,
    } satisfies CheckpointRequest);
    return worker;
  }

  private onReply(reply: CheckpointReply): void {
    if (reply.type === "failed") {
      this.fail(`the checkpoint worker failed: ${reply.message}`);
      return;
    }
    this.pending.shift()?.resolve(reply);
  }

  private fail(reason: string): void {
    if (this.failure) return;
    this.failure =
      `${reason}; the state file is checkpointed by SQLite inside commits again, ` +
      "so requests may wait on a disk sync — restart keypool, and report this if it persists";
    const error = new Error(this.failure);
    for (const waiter of this.pending.splice(0)) waiter.reject(error);
    if (this.timer) clearInterval(this.timer);
    // Checkpoints must still happen somewhere, or the log grows without bound.
    if (!this.stopped) this.db.exec(`PRAGMA wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
  }
}
