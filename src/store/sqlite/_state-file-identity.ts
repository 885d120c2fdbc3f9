import { type BigIntStats, statSync, statfsSync } from "node:fs";
import { dirname } from "node:path";

/** Which file a path named when it was looked at: a device and an inode. */
interface FileId {
  dev: bigint;
  ino: bigint;
}

// Linux statfs f_type values of filesystems whose locks SQLite cannot rely on (its docs advise
// against WAL there): another machine's process is not kept out, and a stale lock can stall every take.
const NETWORK_FILESYSTEMS: Record<string, string> = {
  "6969": "nfs",
  "517b": "smb",
  ff534d42: "cifs",
  fe534d42: "smb2",
  "5346414f": "afs",
  c36400: "ceph",
  "1021997": "9p",
  bd00bd0: "lustre",
  "47504653": "gpfs",
};

/**
 * The state file and its write-ahead log as SQLite opened them, compared with what their paths name
 * now. SQLite keeps writing to a file deleted or renamed away under it, so without this a process
 * would go on handing out keys from a file no other process can see any more, while a newcomer on the
 * same path starts a fresh one: both then lease the same exclusive keys.
 */
export class StateFileIdentity {
  private readonly main: FileId;
  private wal: FileId | undefined;

  /** Call once SQLite has the file open and has written to it (so the -wal exists). */
  constructor(readonly path: string) {
    const stats = statOf(path);
    if (!stats) throw new Error(`the state file ${path} vanished while it was being opened`);
    this.main = idOf(stats);
    const wal = statOf(`${path}-wal`);
    this.wal = wal && idOf(wal);
  }

  /** Why the path no longer names the file this process has open, or undefined while it does (or cannot be told). */
  problem(): string | undefined {
    try {
      return this.compare();
    } catch {
      // A directory closed to us (EACCES) says nothing about which file is there.
      return undefined;
    }
  }

  private compare(): string | undefined {
    const now = statOf(this.path);
    // Said without the path: the sentence reaches clients (503 STATE_FILE_LOST); the log names the file.
    if (!now) return "the state file was deleted while keypool had it open";
    if (!sameFile(idOf(now), this.main)) return "the state file was replaced by another file while keypool had it open";
    const wal = statOf(`${this.path}-wal`);
    // While any connection is open SQLite keeps the -wal in place, so one missing or new is someone else's doing.
    if (this.wal === undefined) {
      this.wal = wal && idOf(wal);
      return undefined;
    }
    if (wal && sameFile(idOf(wal), this.wal)) return undefined;
    const what = wal ? "replaced" : "deleted";
    return `the state file's write-ahead log (its -wal file) was ${what} while keypool had it open`;
  }

  /** Other users may read (or write) the file: it holds the pool's tokens (sealed or not) and their state. */
  looseMode(): string | undefined {
    let stats: BigIntStats | undefined;
    try {
      stats = statOf(this.path);
    } catch {
      return undefined;
    }
    if (!stats || (Number(stats.mode) & 0o077) === 0) return undefined;
    const mode = (Number(stats.mode) & 0o777).toString(8).padStart(4, "0");
    return `the state file ${this.path} is open to other users (mode ${mode}); run chmod 600 on it`;
  }
}

/** A warning when the state file's directory is on a network filesystem (Linux only: elsewhere the types differ). */
export function networkFilesystemWarning(path: string): string | undefined {
  if (process.platform !== "linux") return undefined;
  let type: number;
  try {
    type = statfsSync(dirname(path)).type;
  } catch {
    return undefined;
  }
  const name = NETWORK_FILESYSTEMS[(type >>> 0).toString(16)];
  if (!name) return undefined;
  return (
    `the state file ${path} is on a network filesystem (${name}): SQLite's locks are not reliable there, ` +
    "so two processes may hand out one exclusive key; keep it on a local disk, " +
    "or use store.postgres to share state between machines"
  );
}

function statOf(path: string): BigIntStats | undefined {
  return statSync(path, { bigint: true, throwIfNoEntry: false });
}

function idOf(stats: BigIntStats): FileId {
  return { dev: stats.dev, ino: stats.ino };
}

function sameFile(a: FileId, b: FileId): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}
